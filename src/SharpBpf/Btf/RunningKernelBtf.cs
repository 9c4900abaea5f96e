namespace SharpBpf.Btf;

/// <summary>
/// The running kernel's BTF (/sys/kernel/btf/vmlinux), for the verifier and the loader: read on first need, shared
/// by every user in the process through a weak reference (it holds about 40 MB), so loads and verifications close
/// together parse it once and a long-running process does not keep it after a garbage collection. Absent on other
/// operating systems and on kernels built without CONFIG_DEBUG_INFO_BTF.
/// </summary>
internal static class RunningKernelBtf
{
    public const string VmlinuxPath = "/sys/kernel/btf/vmlinux";

    private static readonly Lock s_lock = new();
    private static WeakReference<BtfSpec>? s_cached;

    /// <summary>The parsed BTF, or null when the file does not exist.</summary>
    /// <exception cref="Objects.ObjectFileException">The file is not valid BTF.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static BtfSpec? Load()
    {
        lock (s_lock)
        {
            if (s_cached is not null && s_cached.TryGetTarget(out var cached))
                return cached;
            if (!File.Exists(VmlinuxPath))
                return null;
            var btf = BtfSpec.Parse(File.ReadAllBytes(VmlinuxPath));
            s_cached = new WeakReference<BtfSpec>(btf);
            return btf;
        }
    }

    /// <summary>As <see cref="Load"/>, with null also when the file cannot be read or parsed.</summary>
    public static BtfSpec? TryLoad()
    {
        try { return Load(); }
        catch (Objects.ObjectFileException) { return null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
