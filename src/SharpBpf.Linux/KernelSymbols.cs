using System.Globalization;
using System.IO.Compression;
using SharpBpf.Btf;

namespace SharpBpf.Linux;

/// <summary>
/// What the running kernel says about itself, read once a process and only when an object needs it: its BTF
/// (/sys/kernel/btf/vmlinux), its symbol addresses (/proc/kallsyms), its build configuration (/proc/config.gz or
/// /boot/config-RELEASE) and its version.
/// </summary>
internal static class KernelSymbols
{
    public const string VmlinuxPath = RunningKernelBtf.VmlinuxPath;

    private static readonly Lazy<(Dictionary<string, string>? Values, string Tried)> s_config = new(ReadConfig);

    private static readonly Lock s_vmlinuxLock = new();
    private static WeakReference<BtfSpec>? s_vmlinux;

    /// <summary>
    /// The kernel's own BTF; a kernel without it cannot take CO-RE relocations or __ksym externs. Parsed on first
    /// use and kept through a weak reference (it holds about 40 MB): loads close together share one parse, and a
    /// long-running process does not keep it after a garbage collection. Loaders hold it while they use it.
    /// </summary>
    public static BtfSpec Vmlinux
    {
        get
        {
            lock (s_vmlinuxLock)
            {
                if (s_vmlinux is not null && s_vmlinux.TryGetTarget(out var cached))
                    return cached;
                // One parse shared with the verifier (which reads kfunc prototypes and kernel structs from it).
                BtfSpec? btf;
                try { btf = RunningKernelBtf.Load(); }
                catch (Objects.ObjectFileException e) { throw new BpfException($"the kernel's BTF ({VmlinuxPath}) cannot be read: {e.Message}", e); }
                catch (IOException e) { throw new BpfException($"the kernel's BTF ({VmlinuxPath}) cannot be read: {e.Message}", e); }
                if (btf is null)
                    throw new BpfNotSupportedException($"kernel BTF ({VmlinuxPath})", "5.4",
                        "CO-RE relocations, __ksym externs and BTF-attached programs need it (a kernel built with CONFIG_DEBUG_INFO_BTF=y)");
                s_vmlinux = new WeakReference<BtfSpec>(btf);
                return btf;
            }
        }
    }

    /// <summary>The kernel's version as KERNEL_VERSION(a, b, c) = a &lt;&lt; 16 | b &lt;&lt; 8 | min(c, 255).</summary>
    public static uint VersionCode
    {
        get
        {
            var release = Release;
            var parts = release.Split('.', '-', '+', '_');
            uint Part(int i) => i < parts.Length && uint.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out uint v) ? v : 0;
            return (Part(0) << 16) | (Math.Min(Part(1), 255) << 8) | Math.Min(Part(2), 255);
        }
    }

    public static string Release
    {
        get
        {
            try { return File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); }
            catch (IOException) { return Environment.OSVersion.Version.ToString(3); }
        }
    }

    // ---- kallsyms ----

    /// <summary>Addresses found so far (null: absent); names with two addresses map to <see cref="Ambiguous"/>.</summary>
    private static readonly Dictionary<string, ulong?> s_addresses = new(StringComparer.Ordinal);
    private const ulong Ambiguous = ulong.MaxValue;

    /// <summary>
    /// Looks the names up in /proc/kallsyms with one pass over it, keeping only these names (the file has about
    /// 100,000 lines; reading it is most of the cost, so callers ask for every name they need at once).
    /// </summary>
    public static void LoadAddresses(IEnumerable<string> names)
    {
        lock (s_addresses)
        {
            var wanted = new Dictionary<string, ulong?>(StringComparer.Ordinal);
            foreach (var name in names)
                if (!s_addresses.ContainsKey(name))
                    wanted[name] = null;
            if (wanted.Count == 0)
                return;
            string text;
            try { text = File.ReadAllText("/proc/kallsyms"); }
            catch (IOException e) { throw new BpfException($"cannot read /proc/kallsyms to find '{wanted.Keys.First()}': {e.Message}", e); }
            catch (UnauthorizedAccessException e) { throw new BpfException($"cannot read /proc/kallsyms to find '{wanted.Keys.First()}': {e.Message}", e); }
            var lookup = wanted.GetAlternateLookup<ReadOnlySpan<char>>();
            bool sawNonZero = false;
            foreach (var range in text.AsSpan().Split('\n'))
            {
                // "ffffffff81000000 T _stext" or "ffffffffc0000000 t name\t[module]"
                var line = text.AsSpan(range);
                int space = line.IndexOf(' ');
                if (space <= 0 || space + 3 > line.Length)
                    continue;
                var name = line[(space + 3)..];
                int tab = name.IndexOf('\t');
                if (tab >= 0)
                    name = name[..tab];
                if (!ulong.TryParse(line[..space], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong address))
                    continue;
                sawNonZero |= address != 0;
                if (!lookup.TryGetValue(name, out var existing))
                    continue;
                lookup[name] = existing is { } known && known != address ? Ambiguous : address;
            }
            if (!sawNonZero)
                throw new BpfException($"/proc/kallsyms shows no addresses to this process (kernel.kptr_restrict): cannot find '{wanted.Keys.First()}'; run as root");
            foreach (var (name, address) in wanted)
                s_addresses[name] = address;
        }
    }

    /// <summary>The address of a kernel symbol from /proc/kallsyms (null when absent). Ambiguous names are an error.</summary>
    public static ulong? Address(string name)
    {
        LoadAddresses([name]);
        ulong? address;
        lock (s_addresses)
            address = s_addresses[name];
        if (address == Ambiguous)
            throw new BpfException($"'{name}' has more than one address in /proc/kallsyms: which one is meant is ambiguous");
        return address;
    }

    // ---- kernel config ----

    private static (Dictionary<string, string>?, string) ReadConfig()
    {
        const string Proc = "/proc/config.gz";
        string boot = $"/boot/config-{Release}";
        try
        {
            if (File.Exists(Proc))
            {
                using var file = File.OpenRead(Proc);
                using var gzip = new GZipStream(file, CompressionMode.Decompress);
                using var reader = new StreamReader(gzip);
                return (Parse(reader), Proc);
            }
            if (File.Exists(boot))
            {
                using var reader = new StreamReader(boot);
                return (Parse(reader), boot);
            }
        }
        catch (IOException) { }
        catch (InvalidDataException) { }
        return (null, $"{Proc} and {boot}");

        static Dictionary<string, string> Parse(TextReader reader)
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            for (string? line; (line = reader.ReadLine()) is not null;)
            {
                // "CONFIG_X=y", "CONFIG_X=\"text\"", "CONFIG_X=123"; "# CONFIG_X is not set" leaves it unset.
                if (!line.StartsWith("CONFIG_", StringComparison.Ordinal))
                    continue;
                int eq = line.IndexOf('=');
                if (eq > 0)
                    values[line[..eq]] = line[(eq + 1)..];
            }
            return values;
        }
    }

    /// <summary>The value of a CONFIG_ option as the config file writes it ("y", "m", "\"text\"", "123"), or null when it is not set.</summary>
    public static string? Config(string name, out bool configFound, out string where)
    {
        var (values, tried) = s_config.Value;
        configFound = values is not null;
        where = tried;
        return values?.GetValueOrDefault(name);
    }
}
