using SharpBpf.Linux.Netlink;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>
/// Everything a kernel test needs, made fresh for the test and removed when it is disposed, even after a failure:
/// a network namespace (<see cref="Ns"/>) holding a veth pair <see cref="Veth0"/>/<see cref="Veth1"/> (both up,
/// IPv6 off so the kernel sends no frames of its own), a private bpffs mount (<see cref="BpfFs"/>) for pins, and a
/// snapshot of this process's descriptors for <see cref="AssertNoFdLeaks"/>.
/// <code>
/// using var env = KernelTestEnvironment.Create();          // skips (with the reason) without root or BPF
/// env.Ns.Run(() => { /* attach to env.Veth1Index, ... */ });
/// env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, 1000, TimeSpan.FromSeconds(10)));
/// env.AssertNoFdLeaks();                                    // after the test's own handles are disposed
/// </code>
/// Frames sent on veth0 arrive on veth1: attach the program under test to veth1.
/// </summary>
public sealed class KernelTestEnvironment : IDisposable
{
    public const string Veth0 = "veth0", Veth1 = "veth1";
    private static readonly string s_bpfFsRoot = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sharpbpf-tests");
    private static int s_counter;

    private readonly FdSnapshot _fds;
    private bool _disposed;

    private KernelTestEnvironment(NetNs ns, string bpfFs, int veth0Index, int veth1Index, FdSnapshot fds)
    {
        Ns = ns;
        BpfFs = bpfFs;
        Veth0Index = veth0Index;
        Veth1Index = veth1Index;
        _fds = fds;
    }

    /// <summary>The test's own network namespace; run code that names its interfaces through <see cref="NetNs.Run{T}"/>.</summary>
    public NetNs Ns { get; }

    /// <summary>A private bpffs mount, empty at the start, unmounted (dropping every pin in it) at the end.</summary>
    public string BpfFs { get; }

    /// <summary>ifindex of veth0 inside <see cref="Ns"/> (send side).</summary>
    public int Veth0Index { get; }

    /// <summary>ifindex of veth1 inside <see cref="Ns"/> (receive side: attach programs here).</summary>
    public int Veth1Index { get; }

    /// <summary>
    /// Skips the calling test with the reason when this machine cannot run kernel tests (not root, or no BPF).
    /// Anything else that goes wrong while setting up is a failure, not a skip.
    /// </summary>
    public static void RequireKernel()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Skip("kernel tests need Linux");
        if (TestLibc.geteuid() != 0)
            Assert.Skip("kernel tests need root (network namespaces, bpffs mounts, BPF)");
        if (!TestLibc.BpfAnswers(out var reason))
            Assert.Skip("kernel tests need BPF: " + reason);
    }

    /// <summary>Makes the namespace, veth pair and bpffs mount; skips when <see cref="RequireKernel"/> says so.</summary>
    public static KernelTestEnvironment Create()
    {
        RequireKernel();
        RemoveLeftoverMounts();
        var fds = FdSnapshot.Take();
        var ns = NetNs.Create();
        string? bpfFs = null;
        try
        {
            // IPv6 off before the veths exist, so neither end sends router solicitations or DAD frames
            // that would show up in a test's packet counters. /proc/sys/net follows the calling thread's netns.
            ns.Run(() =>
            {
                File.WriteAllText("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
                File.WriteAllText("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
            });
            // The veth pair is made with the library's own rtnetlink client (its tests cover it); the ifindexes
            // come from libc so that the fixture does not trust the code under test for them.
            var (i0, i1) = ns.Run(() =>
            {
                using var client = RtNetlinkClient.Open();
                client.CreateVethPair(Veth0, Veth1);
                var index0 = (int)TestLibc.if_nametoindex(Veth0);
                var index1 = (int)TestLibc.if_nametoindex(Veth1);
                if (index0 == 0 || index1 == 0)
                    throw new InvalidOperationException($"veth pair not found in {ns.Name}");
                client.SetUp(index0, true);
                client.SetUp(index1, true);
                // The kernel turns a link on (carrier, qdisc) in delayed work, which a busy machine runs late;
                // frames sent before that are dropped. Wait until both ends report IFF_RUNNING.
                const uint IffRunning = 0x40;
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
                while ((client.GetLink(index0)?.Flags & IffRunning) == 0 || (client.GetLink(index1)?.Flags & IffRunning) == 0)
                {
                    if (DateTime.UtcNow > deadline)
                        throw new InvalidOperationException($"veth pair in {ns.Name} did not come up within 10 s");
                    Thread.Sleep(10);
                }
                return (index0, index1);
            });

            bpfFs = System.IO.Path.Combine(s_bpfFsRoot, $"{NetNs.Prefix}{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}");
            Directory.CreateDirectory(bpfFs);
            if (TestLibc.mount("bpf", bpfFs, "bpf", 0, 0) != 0)
                throw new InvalidOperationException($"mount bpffs on {bpfFs}: {TestLibc.LastError()}");
            return new KernelTestEnvironment(ns, bpfFs, i0, i1, fds);
        }
        catch
        {
            if (bpfFs is not null)
                RemoveMount(bpfFs);
            ns.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Fails when this process holds BPF objects, sockets or bpffs files it did not hold when the environment was
    /// made. Call it after disposing the test's own handles and before disposing the environment.
    /// </summary>
    public void AssertNoFdLeaks() => _fds.AssertNoLeaks();

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        try
        {
            // Unmounting the private bpffs drops its pins, so pinned links release their programs.
            RemoveMount(BpfFs);
        }
        finally
        {
            Ns.Dispose();
        }
    }

    private static void RemoveMount(string dir)
    {
        TestLibc.umount2(dir, TestLibc.MNT_DETACH);
        try { Directory.Delete(dir); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Unmounts and removes the bpffs dirs of earlier runs whose process is gone.</summary>
    private static void RemoveLeftoverMounts()
    {
        if (!Directory.Exists(s_bpfFsRoot))
            return;
        foreach (var dir in Directory.EnumerateDirectories(s_bpfFsRoot, NetNs.Prefix + "*"))
        {
            if (NetNs.OwnerIsGone(System.IO.Path.GetFileName(dir)))
                RemoveMount(dir);
        }
    }
}
