namespace SharpBpf.Linux.Tests.Support;

/// <summary>
/// This process's open descriptors at one moment (/proc/self/fd), to find the kernel objects a test leaked.
/// Only descriptors a SharpBpf leak would leave are counted (BPF anon inodes, sockets, files on a bpffs): the
/// runtime opens assembly files and pipes lazily, and those are not ours.
/// </summary>
public sealed class FdSnapshot
{
    private readonly Dictionary<int, string> _fds;

    private FdSnapshot(Dictionary<int, string> fds) => _fds = fds;

    public static FdSnapshot Take()
    {
        var fds = new Dictionary<int, string>();
        foreach (var entry in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var fd))
                continue;
            try
            {
                fds[fd] = new FileInfo(entry).LinkTarget ?? "";
            }
            catch (IOException)
            {
                // closed while we looked (the enumeration's own descriptor)
            }
        }
        return new FdSnapshot(fds);
    }

    /// <summary>Descriptors open now that were not open (with the same target) at this snapshot.</summary>
    public IReadOnlyList<string> NewSince()
    {
        var now = Take();
        return now._fds
            .Where(kv => !(_fds.TryGetValue(kv.Key, out var before) && before == kv.Value) && IsOurs(kv.Value))
            .Select(kv => $"fd {kv.Key} -> {kv.Value}{Describe(kv.Key)}")
            .ToList();
    }

    public void AssertNoLeaks()
    {
        // No GC.Collect first: a finalizer closing an abandoned SafeHandle would hide a missing Dispose.
        var leaked = NewSince();
        Assert.True(leaked.Count == 0, "leaked descriptors:\n" + string.Join("\n", leaked));
    }

    /// <summary>The kernel's fdinfo ids (prog_id, map_id, link_id...) of a BPF descriptor, to tell which object leaked.</summary>
    private static string Describe(int fd)
    {
        try
        {
            var ids = File.ReadLines($"/proc/self/fdinfo/{fd}")
                .Where(l => l.StartsWith("prog_id", StringComparison.Ordinal) || l.StartsWith("map_id", StringComparison.Ordinal)
                    || l.StartsWith("link_id", StringComparison.Ordinal) || l.StartsWith("link_type", StringComparison.Ordinal)
                    || l.StartsWith("map_type", StringComparison.Ordinal) || l.StartsWith("prog_type", StringComparison.Ordinal))
                .Select(l => l.Replace("\t", " ", StringComparison.Ordinal).Replace('\t', ' '));
            var text = string.Join(", ", ids);
            return text.Length == 0 ? "" : $" ({text})";
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static bool IsOurs(string target) =>
        target.StartsWith("anon_inode:bpf", StringComparison.Ordinal)
        || target.StartsWith("anon_inode:[bpf", StringComparison.Ordinal)
        || target.StartsWith("socket:", StringComparison.Ordinal)
        || target.Contains("sharpbpf-tests", StringComparison.Ordinal);
}
