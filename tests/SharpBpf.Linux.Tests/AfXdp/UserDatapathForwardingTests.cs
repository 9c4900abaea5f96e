using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using SharpBpf.Linux.AfXdp;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Vm;

namespace SharpBpf.Linux.Tests.AfXdp;

/// <summary>
/// Where run-user sends frames besides DROP and TX: PASS into the kernel stack of the receiving interface, REDIRECT
/// out of another interface (devmap, bpf_redirect) or into an AF_XDP socket (xskmap), and what it leaves behind.
/// Frames are sent on veth0 and arrive on veth1, where run-user takes them; a second pair veth2/veth3 in the same
/// namespace is the redirect target (out of veth2, captured on veth3).
/// </summary>
[Collection("AF_XDP")] // one at a time: the fd-leak check sees the whole process
public sealed class UserDatapathForwardingTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);

    private const string Source = """
        #include <linux/bpf.h>
        #define SEC(n) __attribute__((section(n), used))
        #define __uint(name, val) int (*name)[val]
        #define __type(name, val) typeof(val) *name
        static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;
        static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
        static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

        struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } tx_ports SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_DEVMAP_HASH); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } tx_hash SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_XSKMAP); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } xsks SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } out_ifindex SEC(".maps");

        static int seq_odd(struct xdp_md *ctx)
        {
            unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
            return data + 46 <= end && (data[45] & 1);
        }
        /* Odd sequence numbers go to the stack, even ones are dropped. */
        SEC("xdp") int pass_odd(struct xdp_md *ctx) { return seq_odd(ctx) ? XDP_PASS : XDP_DROP; }
        /* Odd ones out through devmap slot 1, even ones through devmap_hash key 7. */
        SEC("xdp") int via_devmap(struct xdp_md *ctx)
        {
            return seq_odd(ctx) ? bpf_redirect_map(&tx_ports, 1, XDP_DROP) : bpf_redirect_map(&tx_hash, 7, XDP_DROP);
        }
        SEC("xdp") int via_ifindex(struct xdp_md *ctx)
        {
            __u32 zero = 0, *ifindex = bpf_map_lookup_elem(&out_ifindex, &zero);
            return ifindex ? bpf_redirect(*ifindex, 0) : XDP_ABORTED;
        }
        SEC("xdp") int via_xsk(struct xdp_md *ctx) { return bpf_redirect_map(&xsks, 2, XDP_DROP); }
        SEC("xdp") int aborts(struct xdp_md *ctx) { return XDP_ABORTED; }
        SEC("xdp") int pass_all(struct xdp_md *ctx) { return XDP_PASS; }
        char LICENSE[] SEC("license") = "GPL";
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("sharpbpf-afxdp-fwd-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private VmCollection Load() => VmCollection.Load(ObjectFile.Open(Repo.CompileBpf(_dir, "user_fwd", Source)));

    private static Task<UserXdpCounters> Start(KernelTestEnvironment env, VmProgram program, int count, List<string>? traces = null, bool passToKernel = true)
    {
        using var ready = new ManualResetEventSlim();
        var run = env.Ns.RunConcurrently(() => UserXdpDatapath.Run(env.Veth1Index, program, new UserXdpOptions
        {
            Count = count, Duration = s_timeout, Mode = XskBindMode.Copy, FrameCount = 1024, Ready = ready.Set, PassToKernel = passToKernel,
            Trace = m => { lock (traces ?? []) traces?.Add(m); },
        }));
        Assert.True(ready.Wait(s_timeout) || run.IsCompleted, "the datapath did not start");
        return run;
    }

    /// <summary>Makes veth2/veth3 (both up) in the test's namespace; returns their ifindexes.</summary>
    private static (int Veth2, int Veth3) SecondPair(KernelTestEnvironment env) => env.Ns.Run(() =>
    {
        using var client = SharpBpf.Linux.Netlink.RtNetlinkClient.Open();
        client.CreateVethPair("veth2", "veth3");
        int i2 = (int)TestLibc.if_nametoindex("veth2"), i3 = (int)TestLibc.if_nametoindex("veth3");
        client.SetUp(i2, true);
        client.SetUp(i3, true);
        return (i2, i3);
    });

    private static int Sequence(byte[] frame) => BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(42));

    [Fact]
    public async Task Pass_ReachesTheKernelStack_OfTheReceivingInterface()
    {
        const int count = 200;
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        // veth1 owns 10.11.0.2, where the fixture's UDP frames go; a UDP socket there gets what the stack receives.
        Ip.Run("-n", env.Ns.Name, "addr", "add", "10.11.0.2/24", "dev", KernelTestEnvironment.Veth1);
        using var udp = env.Ns.Run(() =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 200 };
            // Each datagram built from a live frame is charged a whole page: room for all of them (SO_RCVBUFFORCE).
            s.SetRawSocketOption(1, 33, BitConverter.GetBytes(16 << 20));
            s.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.PacketInformation, true);
            s.Bind(new IPEndPoint(IPAddress.Any, Traffic.Port));
            return s;
        });
        var run = Start(env, collection.Program("pass_odd"), count);
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        var counters = await run;
        Assert.Equal(count / 2, counters.Pass);
        Assert.Equal(count / 2, counters.Drop);
        Assert.Equal(0, counters.PassFailed);

        // Exactly the odd datagrams arrive, each once, with their payload.
        var received = new List<int>();
        var buffer = new byte[2048];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (received.Count < count / 2 && DateTime.UtcNow < deadline)
        {
            try
            {
                // IP_PKTINFO: the stack saw each datagram arrive on veth1, where run-user took it.
                var flags = SocketFlags.None;
                EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                int n = udp.ReceiveMessageFrom(buffer, ref flags, ref from, out var info);
                Assert.Equal(64, n);
                Assert.Equal(env.Veth1Index, info.Interface);
                Assert.Equal(new IPEndPoint(IPAddress.Parse("10.11.0.1"), 1234), from);
                received.Add(BinaryPrimitives.ReadInt32BigEndian(buffer));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { }
        }
        Assert.Equal(Enumerable.Range(0, count / 2).Select(i => 2 * i + 1), received.Order());
        udp.ReceiveTimeout = 300;
        Assert.Throws<SocketException>(() => udp.Receive(buffer)); // and nothing more
        udp.Dispose();
        env.AssertNoFdLeaks();
    }

    [Fact]
    public async Task Pass_WithoutReinjection_NothingReachesTheStack()
    {
        const int count = 40;
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        Ip.Run("-n", env.Ns.Name, "addr", "add", "10.11.0.2/24", "dev", KernelTestEnvironment.Veth1);
        using var udp = env.Ns.Run(() =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 500 };
            s.Bind(new IPEndPoint(IPAddress.Any, Traffic.Port));
            return s;
        });
        using var ready = new ManualResetEventSlim();
        var run = env.Ns.RunConcurrently(() => UserXdpDatapath.Run(env.Veth1Index, collection.Program("pass_all"), new UserXdpOptions
        {
            Count = count, Duration = s_timeout, Mode = XskBindMode.Copy, FrameCount = 1024, Ready = ready.Set, PassToKernel = false,
        }));
        Assert.True(ready.Wait(s_timeout, TestContext.Current.CancellationToken) || run.IsCompleted, "the datapath did not start");
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        Assert.Equal(count, (await run).Pass);
        Assert.Throws<SocketException>(() => udp.Receive(new byte[2048]));
        udp.Dispose();
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void Pass_InSkbAttachMode_IsRefusedBeforeAnythingIsCreated()
    {
        using var collection = Load();
        var error = Assert.Throws<ArgumentException>(() => UserXdpDatapath.Run(1, collection.Program("pass_all"),
            new UserXdpOptions { AttachMode = XdpAttachMode.Skb }, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("generic", error.Message);
        // Without re-injection skb mode is allowed (and would only count PASS frames).
    }

    [Fact]
    public void StackInjector_OneCall_DeliversAFullBatchOfFramesOfEverySize()
    {
        using var env = KernelTestEnvironment.Create();
        Ip.Run("-n", env.Ns.Name, "addr", "add", "10.11.0.2/24", "dev", KernelTestEnvironment.Veth1);
        env.Ns.Run(() =>
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 1000 };
            udp.SetRawSocketOption(1, 33, BitConverter.GetBytes(16 << 20));
            udp.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.PacketInformation, true);
            udp.Bind(new IPEndPoint(IPAddress.Any, Traffic.Port));
            // The injecting program is the attached redirect program (no socket registered: real traffic passes).
            using var redirect = XskRedirect.Load();
            redirect.Attach(env.Veth1Index);
            using var injector = StackInjector.Over(redirect);
            // 64 datagrams from 4 to 1450 payload bytes, each filled with its own byte.
            var payloads = Enumerable.Range(0, StackInjector.Capacity).Select(i => 4 + i * 23).ToArray();
            for (int i = 0; i < payloads.Length; i++)
            {
                var frame = Traffic.BuildUdpFrame(payloads[i], i);
                frame.AsSpan(46).Fill((byte)(0x40 + i));
                Assert.True(injector.Add(frame, env.Veth1Index, 0));
            }
            Assert.False(injector.Add(new byte[StackInjector.MaxFrameLength + 1], env.Veth1Index, 0));
            Assert.False(injector.Add(new byte[13], env.Veth1Index, 0));
            Assert.False(injector.Add(Traffic.BuildUdpFrame(4, 99), env.Veth1Index, 0), "a full batch takes no more");
            Assert.Equal(0, injector.Flush(out int passed));
            Assert.Equal(StackInjector.Capacity, passed);
            Assert.Equal(0, injector.Count);

            var buffer = new byte[2048];
            var seen = new HashSet<int>();
            for (int k = 0; k < payloads.Length; k++)
            {
                var flags = SocketFlags.None;
                EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                int n = udp.ReceiveMessageFrom(buffer, ref flags, ref from, out var info);
                Assert.Equal(env.Veth1Index, info.Interface);
                int i = BinaryPrimitives.ReadInt32BigEndian(buffer);
                Assert.True(seen.Add(i), $"datagram {i} twice");
                Assert.Equal(payloads[i], n);
                Assert.All(buffer.AsSpan(4, n - 4).ToArray(), b => Assert.Equal((byte)(0x40 + i), b));
            }
            Assert.Throws<SocketException>(() => udp.Receive(buffer));
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public async Task Pass_ArpAndUdpFromAPeerNamespace_AreAnswered()
    {
        // veth0 moves to a second namespace (the peer, 10.11.0.1); veth1 (10.11.0.2) stays, with run-user on it passing
        // everything. The peer's ARP request and UDP datagrams reach veth1's stack only through run-user's PASS; the
        // answers leave by the stack's own path. An echo per datagram proves both ways.
        const int rounds = 5;
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        using var peer = NetNs.Create();
        Ip.Run("-n", env.Ns.Name, "link", "set", KernelTestEnvironment.Veth0, "netns", peer.Name);
        // No IPv6 chatter from the peer: every frame run-user sees is the test's.
        peer.Run(() => File.WriteAllText("/proc/sys/net/ipv6/conf/veth0/disable_ipv6", "1"));
        Ip.Run("-n", peer.Name, "addr", "add", "10.11.0.1/24", "dev", KernelTestEnvironment.Veth0);
        Ip.Run("-n", peer.Name, "link", "set", KernelTestEnvironment.Veth0, "up");
        Ip.Run("-n", env.Ns.Name, "addr", "add", "10.11.0.2/24", "dev", KernelTestEnvironment.Veth1);
        using var server = env.Ns.Run(() =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 5000 };
            s.Bind(new IPEndPoint(IPAddress.Any, Traffic.Port));
            return s;
        });
        using var client = peer.Run(() =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 3000 };
            // SO_NO_CHECK: a veth sends UDP with a partial checksum (offload) that only the skb's flags make good;
            // AF_XDP hands over bytes without those flags, so the re-injected datagram would fail the checksum.
            s.SetRawSocketOption(1, 11, BitConverter.GetBytes(1));
            s.Bind(new IPEndPoint(IPAddress.Parse("10.11.0.1"), 0));
            return s;
        });
        using var stop = new CancellationTokenSource();
        using var ready = new ManualResetEventSlim();
        var run = env.Ns.RunConcurrently(() => UserXdpDatapath.Run(env.Veth1Index, collection.Program("pass_all"),
            new UserXdpOptions { Duration = s_timeout, Mode = XskBindMode.Copy, FrameCount = 1024, Ready = ready.Set }, null, stop.Token));
        Assert.True(ready.Wait(s_timeout, TestContext.Current.CancellationToken) || run.IsCompleted, "the datapath did not start");
        Thread.Sleep(50); // the attach's RCU grace period
        var echo = Task.Run(() =>
        {
            var buffer = new byte[256];
            for (int i = 0; i < rounds; i++)
            {
                EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                int n = server.ReceiveFrom(buffer, ref from);
                server.SendTo(buffer.AsSpan(0, n), SocketFlags.None, from);
            }
        }, TestContext.Current.CancellationToken);
        var answers = new List<string>();
        var reply = new byte[256];
        for (int i = 0; i < rounds; i++)
        {
            client.SendTo(System.Text.Encoding.ASCII.GetBytes($"echo {i}"), new IPEndPoint(IPAddress.Parse("10.11.0.2"), Traffic.Port));
            int n;
            try { n = client.Receive(reply); }
            catch (SocketException)
            {
                stop.Cancel();
                var c = await run;
                var neigh = Ip.Run("-n", peer.Name, "neigh");
                var links = Ip.Run("-n", peer.Name, "-s", "link") + Ip.Run("-n", env.Ns.Name, "-s", "link");
                Assert.Fail($"round {i}: received {c.Received} pass {c.Pass} drop {c.Drop} aborted {c.Aborted} failed {c.PassFailed}\n{neigh}\n{links}");
                return;
            }
            answers.Add(System.Text.Encoding.ASCII.GetString(reply, 0, n));
        }
        await echo;
        stop.Cancel();
        var counters = await run;
        Assert.Equal(Enumerable.Range(0, rounds).Select(i => $"echo {i}"), answers);
        // The ARP request and the datagrams came through run-user as PASS (the peer's kernel may add an ARP probe).
        Assert.InRange(counters.Pass, rounds + 1, rounds + 4);
        Assert.Equal(counters.Received, counters.Pass);
        Assert.Equal(0, counters.PassFailed);
        server.Dispose();
        client.Dispose();
        env.AssertNoFdLeaks();
    }

    [Fact]
    public async Task Redirect_ThroughDevmapAndDevmapHash_LeavesByTheOtherInterface()
    {
        const int count = 100;
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        var (veth2, veth3) = SecondPair(env);
        collection.Map("tx_ports").Update(BitConverter.GetBytes(1u), BitConverter.GetBytes((uint)veth2));
        collection.Map("tx_hash").Update(BitConverter.GetBytes(7u), BitConverter.GetBytes((uint)veth2));
        var capture = env.Ns.Run(() => new PacketCapture(veth3));
        var run = Start(env, collection.Program("via_devmap"), count);
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        var counters = await run;
        Assert.Equal(count, counters.Redirect);
        Assert.Equal(0, counters.Aborted + counters.TxFailed + counters.RedirectFailed);
        var frames = capture.Receive(count, s_timeout, f => f.Length >= 46 && f[23] == 17);
        capture.Dispose();
        Assert.Equal(Enumerable.Range(0, count), frames.Select(Sequence).Order());
        Assert.All(frames, f => Assert.Equal(Traffic.BuildUdpFrame(64, Sequence(f)), f));
        env.AssertNoFdLeaks();
    }

    [Fact]
    public async Task Redirect_ToAnIfindex_LeavesByIt_AndAnUnknownIfindexIsAbortedWithATrace()
    {
        const int count = 50;
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        var (veth2, veth3) = SecondPair(env);
        var program = collection.Program("via_ifindex");
        collection.Map("out_ifindex").Update(BitConverter.GetBytes(0u), BitConverter.GetBytes((uint)veth2));
        using (var capture = env.Ns.Run(() => new PacketCapture(veth3)))
        {
            var run = Start(env, program, count);
            Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
            Assert.Equal(count, (await run).Redirect);
            Assert.Equal(count, capture.Receive(count, s_timeout, f => f.Length >= 46 && f[23] == 17).Count);
        }

        collection.Map("out_ifindex").Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(999_999u));
        var traces = new List<string>();
        var second = Start(env, program, 10, traces);
        Assert.Equal(10, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, 10, s_timeout)));
        var counters = await second;
        Assert.Equal(10, counters.Aborted);
        Assert.Equal(0, counters.Redirect);
        Assert.Equal(10, traces.Count);
        Assert.All(traces, t => Assert.Contains("ifindex 999999", t));
        env.AssertNoFdLeaks();
    }

    /// <summary>With PASS re-injection on, xskmap frames ride the batch's injection calls through the attached program;
    /// without it, each goes in a call of its own through a program of its own.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Redirect_ToAnXskmapSocket_DeliversIntoItsRxRing_AndAnEmptySlotIsAborted(bool batched)
    {
        const int count = 60;
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        var (_, veth3) = SecondPair(env);
        var program = collection.Program("via_xsk");
        var xsks = (XskMap)collection.Map("xsks");

        // Slot 2 names a descriptor but no socket object of this process: ABORTED, traced.
        xsks.Update(BitConverter.GetBytes(2u), BitConverter.GetBytes(12345u));
        var traces = new List<string>();
        var first = Start(env, program, 5, traces);
        Assert.Equal(5, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, 5, s_timeout)));
        Assert.Equal(5, (await first).Aborted);
        Assert.Contains("slot 2", traces[0]);

        // A consumer's socket on veth3 (own UMEM, nothing attached there): run-user delivers into its RX ring.
        env.Ns.Run(() =>
        {
            using var umem = new Umem(new UmemOptions { FrameCount = 256, FrameSize = 2048 });
            using var consumer = XskSocket.Create(veth3, 0, umem, new XskSocketOptions { FillRingSize = 128, CompletionRingSize = 128, RxRingSize = 128, TxRingSize = 128 });
            xsks.SetSocket(2, (uint)consumer.Handle.Value, consumer);
            var run = Start(env, program, count, passToKernel: batched);
            Assert.Equal(count, Traffic.SendUdp(env.Veth0Index, count, s_timeout));
            var counters = run.GetAwaiter().GetResult();
            Assert.Equal(count, counters.Redirect);
            Assert.Equal(0, counters.RedirectFailed + counters.Aborted);
            var sequences = new List<int>();
            Assert.Equal(count, XskSocketTests.ReceiveAll(consumer, count, s_timeout, (_, data) =>
            {
                int sequence = BinaryPrimitives.ReadInt32BigEndian(data[42..]);
                Assert.True(Traffic.BuildUdpFrame(64, sequence).AsSpan().SequenceEqual(data), $"frame {sequence} differs");
                sequences.Add(sequence);
            }));
            Assert.Equal(Enumerable.Range(0, count), sequences.Order());
            xsks.Delete(BitConverter.GetBytes(2u));
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void ExceptionMidRun_LeavesNoSocketMapProgramOrMapping()
    {
        using var collection = Load();
        using var env = KernelTestEnvironment.Create();
        var (veth2, _) = SecondPair(env);
        collection.Map("tx_ports").Update(BitConverter.GetBytes(1u), BitConverter.GetBytes((uint)veth2));
        collection.Map("tx_hash").Update(BitConverter.GetBytes(7u), BitConverter.GetBytes((uint)veth2));
        var umemMappings = new List<(nint Start, nuint Length)>();
        int ringsDuring = 0, arraysDuring = 0;
        var linesBefore = File.ReadAllLines("/proc/self/maps");
        var error = Assert.Throws<InvalidOperationException>(() => env.Ns.Run(() =>
        {
            // The devmap program opens a second socket (on veth2) with the first frame; the throw comes from the
            // trace of an ABORTED frame, after both sockets carry traffic.
            long seen = 0;
            var counters = new UserXdpCounters();
            var worker = env.Ns.RunConcurrently(() => UserXdpDatapath.Run(env.Veth1Index, collection.Program("via_devmap"), new UserXdpOptions
            {
                Duration = s_timeout, Mode = XskBindMode.Copy, FrameCount = 1024,
                UmemCreated = u => umemMappings.Add(u.Mapping),
                Trace = _ => throw new InvalidOperationException("mid-run failure"),
            }, counters));
            var deadline = DateTime.UtcNow + s_timeout;
            while (!worker.IsCompleted && XdpHook.Query(env.Veth1Index).Programs.Count == 0 && DateTime.UtcNow < deadline)
                Thread.Sleep(10);
            Thread.Sleep(50);
            Traffic.SendUdp(env.Veth0Index, 20, s_timeout);
            while (counters.Redirect < 20 && !worker.IsCompleted && DateTime.UtcNow < deadline)
                Thread.Sleep(10);
            seen = counters.Redirect;
            var during = File.ReadAllLines("/proc/self/maps");
            ringsDuring = during.Count(l => l.Contains("socket:", StringComparison.Ordinal));
            arraysDuring = during.Except(linesBefore).Count(l => l.Contains("bpf-map", StringComparison.Ordinal));
            collection.Map("tx_ports").Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(999_999u));
            Traffic.SendUdp(env.Veth0Index, 2, s_timeout);
            worker.GetAwaiter().GetResult();
            Assert.Fail($"the run did not fail (redirected {seen})");
        }));
        Assert.Equal("mid-run failure", error.Message);
        Assert.True(ringsDuring >= 8, $"{ringsDuring} socket mappings while two sockets ran (4 rings each)");
        Assert.Single(umemMappings);
        Assert.DoesNotContain(Mappings(), m => (ulong)umemMappings[0].Start >= m.Start && (ulong)umemMappings[0].Start < m.Start + m.Length);
        Assert.True(arraysDuring >= 2, $"{arraysDuring} mapped BPF arrays while PASS re-injection was ready");
        // No ring, UMEM or BPF array mapping is left.
        Assert.Empty(File.ReadAllLines("/proc/self/maps")
            .Where(l => l.Contains("socket:", StringComparison.Ordinal) || l.Contains("bpf-map", StringComparison.Ordinal)).Except(linesBefore));
        env.Ns.Run(() => Assert.Empty(XdpHook.Query(env.Veth1Index).Programs));
        env.AssertNoFdLeaks();
    }

    private static List<(ulong Start, ulong Length)> Mappings() => File.ReadAllLines("/proc/self/maps").Select(line =>
    {
        var range = line.Split(' ', 2)[0].Split('-');
        ulong start = Convert.ToUInt64(range[0], 16), end = Convert.ToUInt64(range[1], 16);
        return (start, end - start);
    }).ToList();
}
