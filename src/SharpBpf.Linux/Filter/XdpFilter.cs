using System.Globalization;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Net;
using SharpBpf.Objects;

namespace SharpBpf.Linux.Filter;

/// <summary>Where the filter is attached, as its pinned links and the interfaces report it.</summary>
public sealed record FilterAttachment(string Interface, int IfIndex, XdpAttachMode Mode, uint ProgramId);

/// <summary>
/// The project's XDP firewall (programs/xdp_filter.o, embedded in this assembly) over the Linux kernel: its rules,
/// policy and counters in maps pinned under <see cref="PinDirectory"/>, and its attachments as bpf_links pinned
/// beside them. Everything is in the bpffs, so any process (another <c>sharpbpf filter</c> command, a restarted
/// service) that opens the same directory sees the same state, and rules added before an attach apply at the attach.
/// <code>
/// using var filter = XdpFilter.Open();
/// filter.Add(FilterRule.Ip("203.0.113.0/24", FilterDirection.Source));
/// filter.Attach("eth0", XdpAttachMode.Native);
/// </code>
/// </summary>
public sealed class XdpFilter : IDisposable
{
    /// <summary>The default pin directory.</summary>
    public const string DefaultPinDirectory = "/sys/fs/bpf/sharpbpf/filter";

    private const string LinkPrefix = "link_";

    private readonly Dictionary<string, BpfMap> maps;
    private bool disposed;

    private XdpFilter(string pinDirectory, Dictionary<string, BpfMap> maps)
    {
        PinDirectory = pinDirectory;
        this.maps = maps;
        State = new FilterState(name => new KernelFilterMap(maps[name]));
    }

    /// <summary>The bpffs directory that holds the filter's maps and links.</summary>
    public string PinDirectory { get; }

    /// <summary>Rules, policy and counters.</summary>
    public FilterState State { get; }

    public FilterPolicy Policy
    {
        get => State.Policy;
        set => State.Policy = value;
    }

    /// <summary>Adds a rule (see <see cref="FilterState.Add"/>); it applies at once where the filter is attached.</summary>
    public int Add(FilterRule rule) => State.Add(rule);

    /// <summary>Removes a rule given as it was added; returns its id.</summary>
    public int Remove(FilterRule rule) => State.Remove(rule);

    public IReadOnlyList<FilterRuleStatus> ListRules() => State.List();

    public FilterStatistics ReadStatistics() => State.ReadStatistics();

    /// <summary>The filter's object file (programs/xdp_filter.o), as a spec.</summary>
    public static CollectionSpec LoadSpec() => FilterProgram.LoadSpec();

    /// <summary>
    /// Opens the filter's pinned maps under <paramref name="pinDirectory"/>, creating and pinning them (empty rules,
    /// policy allow) the first time. Needs a bpffs there (it is created as a subdirectory of a mounted bpffs).
    /// </summary>
    public static XdpFilter Open(string? pinDirectory = null)
    {
        var directory = Path.GetFullPath(pinDirectory ?? DefaultPinDirectory);
        EnsureBpfFsDirectory(directory);
        var spec = FilterProgram.LoadSpec();
        var maps = new Dictionary<string, BpfMap>();
        try
        {
            foreach (var name in FilterState.MapNames)
            {
                var mapSpec = spec.FindMap(name) ?? throw new System.Diagnostics.UnreachableException($"xdp_filter.o has no map '{name}'");
                var path = Path.Combine(directory, name);
                if (File.Exists(path))
                {
                    var map = BpfMap.OpenPinned(path);
                    maps[name] = map;
                    if (map.Type != mapSpec.Type || map.KeySize != mapSpec.KeySize || map.ValueSize != mapSpec.ValueSize)
                    {
                        throw new BpfException(
                            $"{path} is a {map.Type} map with {map.KeySize}-byte keys and {map.ValueSize}-byte values, not the filter's " +
                            $"{mapSpec.Type} with {mapSpec.KeySize}/{mapSpec.ValueSize}: remove {directory} or choose another pin directory");
                    }
                }
                else
                {
                    var map = BpfMap.Create(mapSpec);
                    maps[name] = map;
                    map.Pin(path);
                }
            }
        }
        catch
        {
            foreach (var map in maps.Values)
                map.Dispose();
            throw;
        }
        return new XdpFilter(directory, maps);
    }

    /// <summary>
    /// Attaches the filter to <paramref name="iface"/> (a name or an index) with a bpf_link pinned in the pin
    /// directory, so it stays attached after this process exits. Attaching where it is already attached changes
    /// nothing and reports the attachment.
    /// </summary>
    public FilterAttachment Attach(string iface, XdpAttachMode mode = XdpAttachMode.Auto)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var net = NetInterfaces.Resolve(iface);
        if (Attachments().FirstOrDefault(a => a.IfIndex == net.Index) is { } existing)
            return existing;

        // The program is loaded with the pinned maps: the loader reuses a map pinned under its name.
        var spec = LoadSpec();
        using var collection = BpfCollection.Load(spec, new BpfCollectionOptions { PinDirectory = PinDirectory });
        var program = collection.Programs[FilterState.ProgramName];
        var pin = LinkPin(net.Index);
        // A stale pin (the interface it named is gone, so the link is defunct) must not block the new one.
        if (File.Exists(pin))
            File.Delete(pin);
        using var attachment = XdpHook.Attach(net.Index, program, new XdpAttachOptions { Mode = mode, PinPath = pin });
        return new FilterAttachment(net.Name, net.Index, attachment.Mode, program.Id);
    }

    /// <summary>Detaches the filter from <paramref name="iface"/>; false when it was not attached there.</summary>
    public bool Detach(string iface)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var net = NetInterfaces.Resolve(iface);
        var pin = LinkPin(net.Index);
        if (!File.Exists(pin))
            return false;
        // Detach through the link (so the hook is free at once, whoever else holds the link), then drop the pin.
        using (var link = XdpLink.OpenPinned(pin))
            link.Detach();
        File.Delete(pin);
        return true;
    }

    /// <summary>The interfaces the filter of this pin directory is attached to.</summary>
    public IReadOnlyList<FilterAttachment> Attachments()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var found = new List<FilterAttachment>();
        foreach (var pin in Directory.EnumerateFiles(PinDirectory, LinkPrefix + "*"))
        {
            if (!int.TryParse(Path.GetFileName(pin)[LinkPrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
                continue;
            // The pin names an ifindex of the namespace that attached it; read the link to be sure it is still there.
            if (NetInterfaces.Find(index) is not { } net)
                continue;
            using var link = XdpLink.OpenPinned(pin);
            if (link.IfIndex != index)
                continue;
            var program = XdpHook.Query(index).Programs.FirstOrDefault(p => p.LinkId == link.Id);
            if (program is not null)
                found.Add(new FilterAttachment(net.Name, net.Index, program.Mode, program.ProgramId));
        }
        return found;
    }

    public void Dispose()
    {
        if (disposed)
            return;
        disposed = true;
        foreach (var map in maps.Values)
            map.Dispose();
    }

    private string LinkPin(int ifIndex) => Path.Combine(PinDirectory, LinkPrefix + ifIndex.ToString(CultureInfo.InvariantCulture));

    /// <summary>Creates the pin directory inside a mounted bpffs, or says clearly why it cannot.</summary>
    private static void EnsureBpfFsDirectory(string directory)
    {
        var existing = directory;
        while (!Directory.Exists(existing))
            existing = Path.GetDirectoryName(existing) ?? "/";
        if (!IsBpfFs(existing) && IsUnderDefaultBpfFs(directory) && !IsBpfFs(DefaultBpfFs))
        {
            // A fresh machine may have no bpffs at its usual place: mount one there, as bpftool does before pinning.
            if (Interop.LibC.mount("bpf", DefaultBpfFs, "bpf", 0, "mode=0700") != 0)
                throw new BpfException($"cannot pin the filter under {directory}: {DefaultBpfFs} is not on a bpffs and mounting one failed: {Errno.Describe(Interop.LibC.LastErrno())}");
            existing = directory;
            while (!Directory.Exists(existing))
                existing = Path.GetDirectoryName(existing) ?? "/";
        }
        if (!IsBpfFs(existing))
        {
            throw new BpfException(
                $"cannot pin the filter under {directory}: {existing} is not on a bpffs (mount one with 'mount -t bpf bpf /sys/fs/bpf')");
        }
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BpfException($"cannot create the pin directory {directory}: {e.Message}", e);
        }
    }

    private const string DefaultBpfFs = "/sys/fs/bpf";

    private static bool IsUnderDefaultBpfFs(string directory)
    {
        var full = Path.GetFullPath(directory).TrimEnd('/') + "/";
        return full.StartsWith(DefaultBpfFs + "/", StringComparison.Ordinal) && Directory.Exists(DefaultBpfFs);
    }

    private static bool IsBpfFs(string path)
    {
        // /proc/self/mounts lists every mount point; the deepest one that contains the path is the one it is on.
        var full = Path.GetFullPath(path).TrimEnd('/') + "/";
        var best = (Point: "", Type: "");
        foreach (var line in File.ReadLines("/proc/self/mounts"))
        {
            var fields = line.Split(' ');
            if (fields.Length < 3)
                continue;
            var point = fields[1].Replace("\\040", " ", StringComparison.Ordinal).TrimEnd('/') + "/";
            if (full.StartsWith(point, StringComparison.Ordinal) && point.Length >= best.Point.Length)
                best = (point, fields[2]);
        }
        return best.Type == "bpf";
    }
}

/// <summary>A kernel map seen as an <see cref="IFilterMap"/>.</summary>
public sealed class KernelFilterMap(BpfMap map) : IFilterMap
{
    public string Name => map.Name;
    public int KeySize => (int)map.KeySize;
    public int UserValueSize => map.ValueBufferSize;
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => map.TryLookup(key, value);
    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value) => map.Update(key, value);
    public bool Delete(ReadOnlySpan<byte> key) => map.Delete(key);
    public bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => map.TryGetNextKey(key, nextKey, first: key.IsEmpty);
}
