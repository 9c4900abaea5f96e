using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>Gate for tests that need the real kernel: skips, with the reason, where there is no BPF.</summary>
internal static class KernelTest
{
    private static readonly Lazy<string?> s_unavailable = new(Probe);

    /// <summary>Skips the calling test unless this process may create BPF maps and load programs.</summary>
    public static void RequireBpf()
    {
        if (s_unavailable.Value is { } reason)
            Assert.Skip(reason);
    }

    private static unsafe string? Probe()
    {
        if (!OperatingSystem.IsLinux())
            return "kernel tests need Linux";
        var attr = new MapCreateAttr { MapType = 2, KeySize = 4, ValueSize = 4, MaxEntries = 1 };
        int fd = LinuxSyscalls.Instance.Bpf(BpfCommand.BPF_MAP_CREATE, &attr, (uint)sizeof(MapCreateAttr));
        if (fd >= 0)
        {
            LinuxSyscalls.Instance.Close(fd);
            return null;
        }
        return -fd switch
        {
            Errno.EPERM => "not permitted to use bpf(2) here: kernel tests need root (or CAP_BPF)",
            Errno.ENOSYS => "this kernel has no bpf(2)",
            _ => $"bpf(2) is unusable here: {Errno.Name(-fd)}",
        };
    }
}

/// <summary>
/// Counts this process's open BPF descriptors (anon inodes "bpf-map", "bpf-prog", "bpf_link", "btf") at creation
/// and asserts on dispose that none were leaked. Only BPF descriptors are counted, so the runtime opening files
/// meanwhile does not disturb it.
/// </summary>
internal sealed class FdLeakCheck : IDisposable
{
    private readonly List<string> _before = BpfDescriptors();

    public static List<string> BpfDescriptors()
    {
        var result = new List<string>();
        foreach (var path in Directory.EnumerateFiles("/proc/self/fd"))
        {
            string? target;
            try { target = new FileInfo(path).LinkTarget; }
            catch (IOException) { continue; }
            if (target is not null && (target.Contains("bpf", StringComparison.Ordinal) || target.Contains("btf", StringComparison.Ordinal)))
                result.Add($"{Path.GetFileName(path)} -> {target}");
        }
        result.Sort(StringComparer.Ordinal);
        return result;
    }

    public void Dispose()
    {
        // Handles dropped without Dispose would be closed by finalizers; a leak is what survives them.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var after = BpfDescriptors();
        var leaked = after.Except(_before).ToList();
        Assert.True(leaked.Count == 0, "leaked BPF descriptors: " + string.Join(", ", leaked));
    }
}
