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
    public const string VmlinuxPath = "/sys/kernel/btf/vmlinux";

    private static readonly Lazy<BtfSpec?> s_vmlinux = new(() => File.Exists(VmlinuxPath) ? BtfSpec.Parse(File.ReadAllBytes(VmlinuxPath)) : null);
    private static readonly Lazy<Kallsyms> s_kallsyms = new(ReadKallsyms);
    private static readonly Lazy<(Dictionary<string, string>? Values, string Tried)> s_config = new(ReadConfig);

    /// <summary>The kernel's own BTF; a kernel without it cannot take CO-RE relocations or __ksym externs.</summary>
    public static BtfSpec Vmlinux
    {
        get
        {
            BtfSpec? btf;
            try { btf = s_vmlinux.Value; }
            catch (Objects.ObjectFileException e) { throw new BpfException($"the kernel's BTF ({VmlinuxPath}) cannot be read: {e.Message}", e); }
            return btf ?? throw new BpfNotSupportedException($"kernel BTF ({VmlinuxPath})", "5.4",
                "CO-RE relocations, __ksym externs and BTF-attached programs need it (a kernel built with CONFIG_DEBUG_INFO_BTF=y)");
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

    private sealed class Kallsyms
    {
        public Dictionary<string, ulong> Addresses { get; } = new(StringComparer.Ordinal);
        public HashSet<string> Ambiguous { get; } = new(StringComparer.Ordinal);
        public bool Hidden { get; set; }
    }

    private static Kallsyms ReadKallsyms()
    {
        var result = new Kallsyms();
        bool sawNonZero = false;
        foreach (var line in File.ReadLines("/proc/kallsyms"))
        {
            // "ffffffff81000000 T _stext" or "ffffffffc0000000 t name\t[module]"
            int a = line.IndexOf(' ');
            if (a <= 0 || a + 3 > line.Length)
                continue;
            int nameStart = a + 3;
            int nameEnd = line.IndexOf('\t', nameStart);
            string name = nameEnd < 0 ? line[nameStart..] : line[nameStart..nameEnd];
            if (!ulong.TryParse(line.AsSpan(0, a), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong address))
                continue;
            sawNonZero |= address != 0;
            if (result.Addresses.TryGetValue(name, out ulong existing))
            {
                if (existing != address)
                    result.Ambiguous.Add(name);
            }
            else
            {
                result.Addresses[name] = address;
            }
        }
        result.Hidden = !sawNonZero;
        return result;
    }

    /// <summary>The address of a kernel symbol from /proc/kallsyms (null when absent). Ambiguous names are an error.</summary>
    public static ulong? Address(string name)
    {
        Kallsyms k;
        try { k = s_kallsyms.Value; }
        catch (IOException e) { throw new BpfException($"cannot read /proc/kallsyms to find '{name}': {e.Message}", e); }
        catch (UnauthorizedAccessException e) { throw new BpfException($"cannot read /proc/kallsyms to find '{name}': {e.Message}", e); }
        if (k.Hidden)
            throw new BpfException($"/proc/kallsyms shows no addresses to this process (kernel.kptr_restrict): cannot find '{name}'; run as root");
        if (k.Ambiguous.Contains(name))
            throw new BpfException($"'{name}' has more than one address in /proc/kallsyms: which one is meant is ambiguous");
        return k.Addresses.TryGetValue(name, out ulong address) ? address : null;
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
