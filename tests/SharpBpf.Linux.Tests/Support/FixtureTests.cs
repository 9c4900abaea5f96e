namespace SharpBpf.Linux.Tests.Support;

/// <summary>The fixture itself: namespaces appear and vanish, traffic is bounded, leaks are seen.</summary>
public sealed class FixtureTests
{
    [Fact]
    public void Environment_MakesVethPairAndBpfFs_AndRemovesThem()
    {
        string nsPath, bpfFs;
        using (var env = KernelTestEnvironment.Create())
        {
            nsPath = env.Ns.Path;
            bpfFs = env.BpfFs;
            Assert.True(File.Exists(nsPath));
            Assert.NotEqual(env.Veth0Index, env.Veth1Index);
            Assert.Contains(" " + bpfFs + " bpf ", File.ReadAllText("/proc/self/mounts"));
            // The namespace's interfaces are not the host's.
            Assert.NotEqual(0u, env.Ns.Run(() => TestLibc.if_nametoindex(KernelTestEnvironment.Veth1)));
            env.AssertNoFdLeaks();
        }
        Assert.False(File.Exists(nsPath));
        Assert.DoesNotContain(" " + bpfFs + " ", File.ReadAllText("/proc/self/mounts"));
    }

    [Fact]
    public void Traffic_SendsTheRequestedFramesToThePeer()
    {
        using var env = KernelTestEnvironment.Create();
        var before = env.Ns.Run(() => ReadCounter(KernelTestEnvironment.Veth1, "rx_packets"));
        var sent = env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, 500, TimeSpan.FromSeconds(10)));
        Assert.Equal(500, sent);
        var after = WaitFor(() => env.Ns.Run(() => ReadCounter(KernelTestEnvironment.Veth1, "rx_packets")), before + 500);
        Assert.True(after == before + 500, $"veth1 rx_packets went from {before} to {after} for {sent} frames sent");
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void FdSnapshot_SeesAnOpenSocket()
    {
        KernelTestEnvironment.RequireKernel();
        var snapshot = FdSnapshot.Take();
        var fd = TestLibc.socket(TestLibc.AF_PACKET, TestLibc.SOCK_RAW | TestLibc.SOCK_CLOEXEC, 0);
        Assert.True(fd >= 0);
        try
        {
            Assert.Contains(snapshot.NewSince(), line => line.StartsWith($"fd {fd} -> socket:", StringComparison.Ordinal));
        }
        finally
        {
            TestLibc.close(fd);
        }
        Assert.Empty(snapshot.NewSince());
    }

    [Fact]
    public void LeftoverOfDeadProcess_IsRecognised()
    {
        Assert.True(NetNs.OwnerIsGone($"{NetNs.Prefix}{int.MaxValue - 1}-1"));
        Assert.False(NetNs.OwnerIsGone($"{NetNs.Prefix}{Environment.ProcessId}-1"));
        Assert.False(NetNs.OwnerIsGone($"{NetNs.Prefix}1-1")); // pid 1 always runs
    }

    /// <summary>
    /// Interface statistics as seen from inside the namespace (/sys shows the host's view, so read
    /// /proc/thread-self/net/dev, which follows the calling thread's namespace).
    /// </summary>
    internal static long ReadCounter(string ifName, string counter)
    {
        foreach (var line in File.ReadLines("/proc/thread-self/net/dev"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || line[..colon].Trim() != ifName)
                continue;
            var fields = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(fields[counter == "rx_packets" ? 1 : 9], System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new InvalidOperationException($"{ifName} not in /proc/net/dev");
    }

    private static long WaitFor(Func<long> read, long expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        long value;
        while ((value = read()) < expected && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        return value;
    }
}
