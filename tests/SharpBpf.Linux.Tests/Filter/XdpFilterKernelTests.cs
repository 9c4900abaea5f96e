using System.Diagnostics;
using System.Runtime.InteropServices;
using SharpBpf.Linux.Filter;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>
/// The filter attached in native mode to a veth in the test's own network namespace, with real frames sent from the
/// peer: each rule kind drops exactly the matching frames, the counters equal the frames sent, the state survives a
/// detach/attach and a reopen from the pins, and bad rules change nothing.
/// </summary>
[Collection(Collection)]
public sealed class XdpFilterKernelTests
{
    /// <summary>The filter's kernel tests run one after the other: each checks this process's descriptors.</summary>
    public const string Collection = "XdpFilter kernel";

    private const int Copies = 20;

    [Fact]
    public void EveryScenarioDropsExactlyTheMatchingFramesOnAVeth()
    {
        using var env = KernelTestEnvironment.Create();
        using (var filter = XdpFilter.Open(Path.Combine(env.BpfFs, "filter")))
        {
            var attachment = env.Ns.Run(() => filter.Attach(KernelTestEnvironment.Veth1, XdpAttachMode.Native));
            Assert.Equal(XdpAttachMode.Native, attachment.Mode);
            foreach (var scenario in FilterScenarios.All)
            {
                filter.State.Clear();
                filter.State.ResetCounters();
                filter.Policy = scenario.Policy;
                var ids = filter.State.AddRange(scenario.Rules);

                var verdicts = new List<string>();
                var expected = new List<string>();
                for (var i = 0; i < FilterScenarios.Packets.Count; i++)
                {
                    var (name, frame) = FilterScenarios.Packets[i];
                    var before = filter.ReadStatistics();
                    Assert.Equal(Copies, env.Ns.Run(() => FrameSender.Send(env.Veth0Index, frame, Copies, TimeSpan.FromSeconds(10))));
                    var after = WaitForTotal(filter, before.TotalPackets + Copies);
                    var dropped = after.Dropped.Packets - before.Dropped.Packets;
                    var passed = after.Passed.Packets - before.Passed.Packets;
                    verdicts.Add($"{scenario.Name} / {name}: dropped {dropped} passed {passed}");
                    var drop = scenario.Dropped.Contains(i);
                    expected.Add($"{scenario.Name} / {name}: dropped {(drop ? Copies : 0)} passed {(drop ? 0 : Copies)}");
                }
                Assert.Equal(expected, verdicts);

                var hits = filter.ListRules().ToDictionary(r => r.Id, r => r.Packets);
                Assert.Equal(scenario.Hits.Select(h => (ulong)(h * Copies)), ids.Select(id => hits[id]));
                var stats = filter.ReadStatistics();
                Assert.Equal((ulong)(FilterScenarios.Packets.Count * Copies), stats.TotalPackets);
            }
            Assert.True(env.Ns.Run(() => filter.Detach(KernelTestEnvironment.Veth1)));
            Assert.Empty(env.Ns.Run(filter.Attachments));
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void RulesAddedBeforeAttachApplyAndSurviveDetachAttachAndReopen()
    {
        using var env = KernelTestEnvironment.Create();
        var pins = Path.Combine(env.BpfFs, "filter");
        var frame = FramePacket.Udp("10.0.0.1", "10.0.0.2", 40000, 53).Build();
        using (var filter = XdpFilter.Open(pins))
        {
            filter.Add(FilterRule.Port(53, FilterTransport.Udp, FilterDirection.Destination));
            filter.Add(FilterRule.Ip("fd00::/8", FilterDirection.Source, FilterAction.Allow));
            env.Ns.Run(() => filter.Attach(KernelTestEnvironment.Veth1, XdpAttachMode.Native));
            SendAndWait(env, filter, frame, 100);
            Assert.Equal(100UL, filter.ReadStatistics().Dropped.Packets);
            Assert.True(env.Ns.Run(() => filter.Detach(KernelTestEnvironment.Veth1)));

            // Detached: frames no longer reach the filter, its counters stand still.
            env.Ns.Run(() => FrameSender.Send(env.Veth0Index, frame, 10, TimeSpan.FromSeconds(10)));
            Thread.Sleep(100);
            Assert.Equal(100UL, filter.ReadStatistics().TotalPackets);
        }

        // A new process would find only the pins: so does a fresh instance with every descriptor closed.
        env.AssertNoFdLeaks();
        using (var reopened = XdpFilter.Open(pins))
        {
            Assert.Equal(["deny port 53 udp dst", "allow ip fd00::/8 src"], reopened.ListRules().Select(r => r.Rule.ToString()));
            Assert.Equal(100UL, reopened.ListRules()[0].Packets);
            env.Ns.Run(() => reopened.Attach(KernelTestEnvironment.Veth1, XdpAttachMode.Native));
            SendAndWait(env, reopened, frame, 50);
            Assert.Equal(150UL, reopened.ReadStatistics().Dropped.Packets);
            Assert.Equal(150UL, reopened.ListRules()[0].Packets);
            Assert.Single(env.Ns.Run(reopened.Attachments));
        }

        // The pinned link keeps the filter attached with no process holding it.
        env.AssertNoFdLeaks();
        var status = env.Ns.Run(() => XdpHook.Query(env.Veth1Index));
        Assert.Contains(status.Programs, p => p.Name == FilterState.ProgramName && p.AttachedBy == XdpAttachMechanism.Link);
        using (var again = XdpFilter.Open(pins))
            Assert.True(env.Ns.Run(() => again.Detach(KernelTestEnvironment.Veth1)));
        Assert.Empty(env.Ns.Run(() => XdpHook.Query(env.Veth1Index)).Programs);
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void BadRulesAndUnknownInterfacesGetAClearErrorAndChangeNothing()
    {
        using var env = KernelTestEnvironment.Create();
        using (var filter = XdpFilter.Open(Path.Combine(env.BpfFs, "filter")))
        {
            filter.Add(FilterRule.Mac("02:00:00:00:00:09"));
            var before = string.Join(";", filter.ListRules().Select(r => r.Rule)) + filter.Policy;

            Assert.Contains("host bits", Assert.Throws<FilterRuleException>(() => filter.Add(FilterRule.Ip("10.0.0.1/8"))).Message);
            Assert.Contains("70000", Assert.Throws<FilterRuleException>(() => filter.Add(FilterRule.Port(70000))).Message);
            Assert.Contains("overlaps", Assert.Throws<FilterRuleException>(() => filter.Add(FilterRule.Mac("02:00:00:00:00:09", action: FilterAction.Allow))).Message);
            var unknown = Assert.ThrowsAny<BpfException>(() => env.Ns.Run(() => filter.Attach("nosuch0", XdpAttachMode.Native)));
            Assert.Contains("nosuch0", unknown.Message);

            Assert.Equal(before, string.Join(";", filter.ListRules().Select(r => r.Rule)) + filter.Policy);
            Assert.Empty(env.Ns.Run(filter.Attachments));
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void OpeningWhereThereIsNoBpffsSaysSo()
    {
        KernelTestEnvironment.RequireKernel();
        var dir = Directory.CreateTempSubdirectory("sharpbpf-nobpffs-");
        try
        {
            var error = Assert.Throws<BpfException>(() => XdpFilter.Open(Path.Combine(dir.FullName, "filter")));
            Assert.Contains("bpffs", error.Message);
            Assert.False(Directory.Exists(Path.Combine(dir.FullName, "filter")));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static void SendAndWait(KernelTestEnvironment env, XdpFilter filter, byte[] frame, int count)
    {
        var before = filter.ReadStatistics().TotalPackets;
        Assert.Equal(count, env.Ns.Run(() => FrameSender.Send(env.Veth0Index, frame, count, TimeSpan.FromSeconds(10))));
        Assert.Equal(before + (ulong)count, WaitForTotal(filter, before + (ulong)count).TotalPackets);
    }

    /// <summary>Frames sent on veth0 reach veth1's XDP hook asynchronously (the peer's NAPI): wait, bounded, for them.</summary>
    private static FilterStatistics WaitForTotal(XdpFilter filter, ulong total)
    {
        var clock = Stopwatch.StartNew();
        var stats = filter.ReadStatistics();
        while (stats.TotalPackets < total && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(2);
            stats = filter.ReadStatistics();
        }
        return stats;
    }
}

/// <summary>Writes whole Ethernet frames onto an interface with an AF_PACKET socket (from inside the test's namespace).</summary>
internal static unsafe class FrameSender
{
    public static int Send(int ifIndex, byte[] frame, int count, TimeSpan timeout)
    {
        var fd = TestLibc.socket(TestLibc.AF_PACKET, TestLibc.SOCK_RAW | TestLibc.SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw new InvalidOperationException("socket(AF_PACKET): " + TestLibc.LastError());
        try
        {
            var address = new TestLibc.SockaddrLl { Family = TestLibc.AF_PACKET, IfIndex = ifIndex, HaLength = 6 };
            var clock = Stopwatch.StartNew();
            var sent = 0;
            while (sent < count && clock.Elapsed < timeout)
            {
                fixed (byte* p = frame)
                {
                    if (TestLibc.sendto(fd, p, (nuint)frame.Length, 0, &address, (uint)sizeof(TestLibc.SockaddrLl)) >= 0)
                    {
                        sent++;
                        continue;
                    }
                }
                var errno = Marshal.GetLastPInvokeError();
                if (errno is not (TestLibc.ENOBUFS or TestLibc.EAGAIN or TestLibc.EINTR))
                    throw new InvalidOperationException($"sendto ifindex {ifIndex}: {Errno.Name(errno)}");
                Thread.Yield();
            }
            return sent;
        }
        finally
        {
            TestLibc.close(fd);
        }
    }
}
