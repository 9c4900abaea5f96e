using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Text.RegularExpressions;
using SharpBpf.Helpers;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests.Helpers;

/// <summary>
/// bpf_fib_lookup and bpf_check_mtu against the kernel: a private namespace gets interfaces, addresses, routes and
/// neighbours with <c>ip</c>, the managed <see cref="RoutingTable"/> gets the same, and the xdp_fib fixture asks both
/// the same questions through BPF_PROG_TEST_RUN and through the VM's engines. Return value and packet must agree.
/// </summary>
public class FibLookupKernelTests
{
    private const byte AfInet = 2, AfInet6 = 10;

    private static readonly PhysicalAddress Mac1 = PhysicalAddress.Parse("02-00-00-00-00-01");
    private static readonly PhysicalAddress Mac2 = PhysicalAddress.Parse("02-00-00-00-00-02");
    private static readonly PhysicalAddress Gw1 = PhysicalAddress.Parse("02-00-00-00-01-FE");
    private static readonly PhysicalAddress Gw2 = PhysicalAddress.Parse("02-00-00-00-02-FE");
    private static readonly PhysicalAddress Host7 = PhysicalAddress.Parse("02-00-00-00-01-07");

    private static void Ip(NetNs ns, string command) => Support.Ip.Run(["-n", ns.Name, .. command.Split(' ')]);

    private static uint Ifindex(NetNs ns, string name)
    {
        var line = Support.Ip.Run("-n", ns.Name, "-o", "link", "show", name);
        return uint.Parse(Regex.Match(line, @"^(\d+):").Groups[1].Value);
    }

    private static void Sysctl(NetNs ns, string key, string value) =>
        ns.Run(() => File.WriteAllText("/proc/sys/" + key.Replace('.', '/'), value));

    /// <summary>Builds the namespace's network and the same managed table.</summary>
    private static (RoutingTable Table, uint V1, uint V2) Build(NetNs ns)
    {
        Ip(ns, "link set lo up");
        Ip(ns, "link add v1 type veth peer name v1p");
        Ip(ns, "link add v2 type veth peer name v2p");
        Ip(ns, "link set v1 address 02:00:00:00:00:01 mtu 1400 up");
        Ip(ns, "link set v2 address 02:00:00:00:00:02 mtu 9000 up");
        Ip(ns, "link set v1p up");
        Ip(ns, "link set v2p mtu 9000 up");
        Sysctl(ns, "net.ipv4.conf.all.forwarding", "1");
        Sysctl(ns, "net.ipv6.conf.all.forwarding", "1");
        Sysctl(ns, "net.ipv4.conf.v2.forwarding", "0");
        Sysctl(ns, "net.ipv6.conf.v2.forwarding", "0");
        Ip(ns, "addr add 10.1.0.1/24 dev v1");
        Ip(ns, "addr add 10.2.0.1/24 dev v2");
        Ip(ns, "-6 addr add fd01::1/64 dev v1 nodad");
        Ip(ns, "-6 addr add fd02::1/64 dev v2 nodad");
        Ip(ns, "route add 10.50.0.0/16 via 10.1.0.254 dev v1");
        Ip(ns, "route add 10.51.0.0/16 via 10.1.0.254 dev v1 mtu lock 1300");
        Ip(ns, "route add 10.60.0.0/16 via 10.2.0.254 dev v2 metric 7");
        Ip(ns, "route add 10.60.0.0/16 via 10.1.0.254 dev v1 metric 9");
        Ip(ns, "route add blackhole 10.70.0.0/16");
        Ip(ns, "route add unreachable 10.71.0.0/16");
        Ip(ns, "route add prohibit 10.72.0.0/16");
        Ip(ns, "route add 10.80.0.0/16 via 10.1.0.253 dev v1");
        Ip(ns, "route add 10.90.0.0/16 via 10.2.0.254 dev v2 table 100");
        Ip(ns, "-6 route add fd50::/64 via fd01::fe dev v1");
        Ip(ns, "-6 route add fd60::/64 via fd02::fe dev v2 mtu lock 1280");
        Ip(ns, "-6 route add fd61::/64 via fd02::fe dev v2 mtu 1280");
        Ip(ns, "route add 10.52.0.0/16 via 10.1.0.254 dev v1 mtu 1300");
        Ip(ns, "-6 route add blackhole fd70::/64");
        Ip(ns, "-6 route add prohibit fd72::/64");
        Ip(ns, "-6 route add fd80::/64 via fd01::fd dev v1");
        Ip(ns, "neigh add 10.1.0.254 lladdr 02:00:00:00:01:fe dev v1 nud permanent");
        Ip(ns, "neigh add 10.2.0.254 lladdr 02:00:00:00:02:fe dev v2 nud permanent");
        Ip(ns, "neigh add 10.1.0.7 lladdr 02:00:00:00:01:07 dev v1 nud permanent");
        Ip(ns, "-6 neigh add fd01::fe lladdr 02:00:00:00:01:fe dev v1 nud permanent");
        Ip(ns, "-6 neigh add fd02::fe lladdr 02:00:00:00:02:fe dev v2 nud permanent");

        uint v1 = Ifindex(ns, "v1"), v2 = Ifindex(ns, "v2");
        var table = new RoutingTable()
            .AddInterface(v1, Mac1, mtu: 1400)
            .AddInterface(v2, Mac2, mtu: 9000, forwarding: false)
            .AddAddress(v1, "10.1.0.1/24")
            .AddAddress(v2, "10.2.0.1/24")
            .AddAddress(v1, "fd01::1/64")
            .AddAddress(v2, "fd02::1/64")
            .AddRoute("10.50.0.0/16", v1, gateway: "10.1.0.254")
            .AddRoute("10.51.0.0/16", v1, gateway: "10.1.0.254", mtu: 1300)
            .AddRoute("10.60.0.0/16", v2, gateway: "10.2.0.254", metric: 7)
            .AddRoute("10.60.0.0/16", v1, gateway: "10.1.0.254", metric: 9)
            .AddRoute("10.70.0.0/16", 0, type: RouteType.Blackhole)
            .AddRoute("10.71.0.0/16", 0, type: RouteType.Unreachable)
            .AddRoute("10.72.0.0/16", 0, type: RouteType.Prohibit)
            .AddRoute("10.80.0.0/16", v1, gateway: "10.1.0.253")
            .AddRoute("10.90.0.0/16", v2, gateway: "10.2.0.254", table: 100)
            .AddRoute("fd50::/64", v1, gateway: "fd01::fe")
            .AddRoute("fd60::/64", v2, gateway: "fd02::fe", mtu: 1280)
            // An unlocked route MTU does not change bpf_fib_lookup's answer: the managed route has none.
            .AddRoute("fd61::/64", v2, gateway: "fd02::fe")
            .AddRoute("10.52.0.0/16", v1, gateway: "10.1.0.254")
            .AddRoute("fd70::/64", 0, type: RouteType.Blackhole)
            .AddRoute("fd72::/64", 0, type: RouteType.Prohibit)
            .AddRoute("fd80::/64", v1, gateway: "fd01::fd")
            .AddNeighbour(v1, "10.1.0.254", Gw1)
            .AddNeighbour(v2, "10.2.0.254", Gw2)
            .AddNeighbour(v1, "10.1.0.7", Host7)
            .AddNeighbour(v1, "fd01::fe", Gw1)
            .AddNeighbour(v2, "fd02::fe", Gw2);
        return (table, v1, v2);
    }

    private static byte[] FibRequest(uint flags, byte family, uint ifindex, string destination, ushort totLen, uint tbid = 0, string? source = null)
    {
        var frame = new byte[14 + 8 + 64];
        frame[12] = 0x88;
        frame[13] = 0xb5;
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(14), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(18), flags);
        var p = frame.AsSpan(22);
        p[0] = family;
        p[1] = 17;
        BinaryPrimitives.WriteUInt16LittleEndian(p[6..], totLen);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], ifindex);
        if (source is not null)
            IPAddress.Parse(source).TryWriteBytes(p[16..], out _);
        IPAddress.Parse(destination).TryWriteBytes(p[32..], out _);
        BinaryPrimitives.WriteUInt32LittleEndian(p[48..], tbid);
        p[52..64].Fill(0xee);
        return frame;
    }

    private static byte[] MtuRequest(uint flags, uint ifindex, uint mtuLen, int lenDiff, int padding = 0)
    {
        var frame = new byte[14 + 8 + 64 + padding];
        frame[12] = 0x88;
        frame[13] = 0xb5;
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(18), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(22), ifindex);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(26), mtuLen);
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(30), lenDiff);
        return frame;
    }

    private static IEnumerable<(string Name, byte[] Frame)> Requests(uint v1, uint v2)
    {
        // bpf_fib_lookup, IPv4.
        yield return ("v4 via gateway", FibRequest(0, AfInet, v1, "10.50.1.2", 100));
        yield return ("v4 connected host", FibRequest(0, AfInet, v1, "10.1.0.7", 100));
        yield return ("v4 connected, no neighbour", FibRequest(0, AfInet, v1, "10.1.0.8", 100));
        yield return ("v4 connected, skip neigh", FibRequest(4, AfInet, v1, "10.1.0.8", 100));
        yield return ("v4 gateway without neighbour", FibRequest(0, AfInet, v1, "10.80.0.1", 100));
        yield return ("v4 gateway without neighbour, skip neigh", FibRequest(4, AfInet, v1, "10.80.0.1", 100));
        yield return ("v4 lowest metric wins", FibRequest(0, AfInet, v1, "10.60.3.4", 60));
        yield return ("v4 frag needed (device MTU)", FibRequest(0, AfInet, v1, "10.50.1.2", 1401));
        yield return ("v4 at device MTU", FibRequest(0, AfInet, v1, "10.50.1.2", 1400));
        yield return ("v4 frag needed (locked route MTU)", FibRequest(0, AfInet, v1, "10.51.1.2", 1301));
        yield return ("v4 under locked route MTU", FibRequest(0, AfInet, v1, "10.51.1.2", 1300));
        yield return ("v4 unlocked route MTU is not used", FibRequest(0, AfInet, v1, "10.52.1.2", 1301));
        yield return ("v4 blackhole", FibRequest(0, AfInet, v1, "10.70.0.1", 100));
        yield return ("v4 unreachable", FibRequest(0, AfInet, v1, "10.71.0.1", 100));
        yield return ("v4 prohibit", FibRequest(0, AfInet, v1, "10.72.0.1", 100));
        yield return ("v4 no route", FibRequest(0, AfInet, v1, "192.0.2.1", 100));
        yield return ("v4 local address", FibRequest(0, AfInet, v1, "10.2.0.1", 100));
        yield return ("v4 broadcast", FibRequest(0, AfInet, v1, "10.1.0.255", 100));
        yield return ("v4 forwarding disabled on ingress", FibRequest(0, AfInet, v2, "10.50.1.2", 100));
        yield return ("v4 unknown ifindex", FibRequest(0, AfInet, 4000, "10.50.1.2", 100));
        yield return ("v4 direct, main", FibRequest(1, AfInet, v1, "10.50.1.2", 100));
        yield return ("v4 direct, local address in main", FibRequest(1, AfInet, v1, "10.2.0.1", 100));
        yield return ("v4 direct + tbid 100", FibRequest(1 | 8, AfInet, v1, "10.90.1.1", 100, tbid: 100));
        yield return ("v4 direct + tbid 100, no route", FibRequest(1 | 8, AfInet, v1, "10.50.1.2", 100, tbid: 100));
        yield return ("v4 direct + tbid missing table", FibRequest(1 | 8, AfInet, v1, "10.50.1.2", 100, tbid: 4242));
        yield return ("v4 full lookup ignores table 100", FibRequest(0, AfInet, v1, "10.90.1.1", 100));
        yield return ("v4 bad flags", FibRequest(1 << 9, AfInet, v1, "10.50.1.2", 100));
        yield return ("v4 mark flag", FibRequest(32, AfInet, v1, "10.50.1.2", 100));
        yield return ("v4 flag 64", FibRequest(64, AfInet, v1, "10.50.1.2", 100));
        yield return ("v4 output flag picks the route through ifindex", FibRequest(2, AfInet, v1, "10.60.3.4", 100));
        yield return ("v4 output flag, no route through ifindex", FibRequest(2, AfInet, v1, "10.90.1.1", 100));
        yield return ("v4 src flag", FibRequest(16, AfInet, v1, "10.50.1.2", 100));
        // IPv6.
        yield return ("v6 via gateway", FibRequest(0, AfInet6, v1, "fd50::9", 100));
        yield return ("v6 route MTU", FibRequest(0, AfInet6, v1, "fd60::9", 1281));
        yield return ("v6 at route MTU", FibRequest(0, AfInet6, v1, "fd60::9", 1280));
        yield return ("v6 unlocked route MTU is not used", FibRequest(0, AfInet6, v1, "fd61::9", 1281));
        yield return ("v6 blackhole", FibRequest(0, AfInet6, v1, "fd70::1", 100));
        yield return ("v6 prohibit", FibRequest(0, AfInet6, v1, "fd72::1", 100));
        yield return ("v6 no neighbour", FibRequest(0, AfInet6, v1, "fd80::1", 100));
        yield return ("v6 no neighbour, skip neigh", FibRequest(4, AfInet6, v1, "fd80::1", 100));
        yield return ("v6 no route", FibRequest(0, AfInet6, v1, "2001:db8::1", 100));
        yield return ("v6 forwarding disabled", FibRequest(0, AfInet6, v2, "fd50::9", 100));
        yield return ("v6 frag needed", FibRequest(0, AfInet6, v1, "fd50::9", 1401));
        yield return ("bad family", FibRequest(0, 7, v1, "10.50.1.2", 100));
        // bpf_check_mtu.
        yield return ("mtu lo, packet length", MtuRequest(0, 0, 0, 0));
        yield return ("mtu v1 fits", MtuRequest(0, v1, 1400, 0));
        yield return ("mtu v1 too big", MtuRequest(0, v1, 1401, 0));
        yield return ("mtu v1 len_diff", MtuRequest(0, v1, 1300, 101));
        yield return ("mtu v1 negative len_diff", MtuRequest(0, v1, 1500, -100));
        yield return ("mtu v2", MtuRequest(0, v2, 9001, 0));
        yield return ("mtu unknown ifindex", MtuRequest(0, 4000, 0, 0));
        yield return ("mtu segs flag", MtuRequest(1, v1, 0, 0));
    }

    [Fact]
    public void FibLookupAndCheckMtuAnswerAsTheKernelDoes()
    {
        KernelTest.RequireBpf();
        using var ns = NetNs.Create();
        var (table, v1, v2) = Build(ns);
        Compare(ns, table, Requests(v1, v2), minimumSuccesses: 8);
    }

    [Fact]
    public void UnconfiguredVmAnswersAsAFreshNamespace()
    {
        KernelTest.RequireBpf();
        using var ns = NetNs.Create();
        Compare(ns, null,
        [
            ("v4 on lo", FibRequest(0, AfInet, 1, "10.50.1.2", 100)),
            ("v6 on lo", FibRequest(0, AfInet6, 1, "fd50::1", 100)),
            ("v4 direct on lo", FibRequest(1, AfInet, 1, "127.0.0.1", 100)),
            ("v4 unknown ifindex", FibRequest(0, AfInet, 2, "10.50.1.2", 100)),
            ("v4 bad flags", FibRequest(1 << 7, AfInet, 1, "10.50.1.2", 100)),
            ("bad family", FibRequest(0, 3, 1, "10.50.1.2", 100)),
            ("mtu lo", MtuRequest(0, 0, 0, 0)),
            ("mtu lo by index", MtuRequest(0, 1, 65536, 1)),
            ("mtu unknown", MtuRequest(0, 2, 0, 0)),
        ], minimumSuccesses: 1);
    }

    private static void Compare(NetNs ns, RoutingTable? table, IEnumerable<(string Name, byte[] Frame)> requests, int minimumSuccesses)
    {
        var spec = ObjectFile.Open(Repo.TestData("xdp_fib.o"));
        using var kernel = BpfCollection.Load(spec);
        var kernelProgram = kernel.Programs.Values.Single();
        var engines = new[] { VmEngine.Interpreter, VmEngine.Jit }
            .Select(engine => (Engine: engine.ToName(), Vm: VmCollection.Load(ObjectFile.Open(Repo.TestData("xdp_fib.o")), new VmOptions { Engine = engine, Routes = table })))
            .ToArray();
        try
        {
            var failures = new List<string>();
            int successes = 0;
            foreach (var (name, frame) in requests)
            {
                var expected = ns.Run(() => kernelProgram.TestRun(new TestRunOptions { Data = frame }));
                if ((uint)expected.ReturnValue == 0)
                    successes++;
                foreach (var (engine, vm) in engines)
                {
                    var actual = vm.Program("xdp_fib").TestRun(new TestRunOptions { Data = frame });
                    if ((uint)actual.ReturnValue != (uint)expected.ReturnValue || !actual.DataOut.SequenceEqual(expected.DataOut))
                        failures.Add($"{name} ({engine}): kernel {(int)expected.ReturnValue} {Convert.ToHexString(expected.DataOut.AsSpan(14))}\n"
                            + $"{new string(' ', name.Length + 3 + engine.Length)}vm     {(int)actual.ReturnValue} {Convert.ToHexString(actual.DataOut.AsSpan(14))}");
                }
            }
            Assert.True(failures.Count == 0, string.Join("\n", failures));
            // The setup must have produced real forwarding answers, not only refusals.
            Assert.True(successes >= minimumSuccesses, $"only {successes} requests succeeded in the kernel: the namespace setup is wrong");
        }
        finally
        {
            foreach (var (_, vm) in engines)
                vm.Dispose();
        }
    }
}
