using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Tests.Objects;
using SharpBpf.Vm;
using SharpBpf.Xdp;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Helpers;

/// <summary>
/// bpf_fib_lookup, bpf_check_mtu and the base-set helpers added for real XDP programs, run through the xdp_fib
/// fixture (which hands a request in the packet to the helper and writes the output back) on the interpreter;
/// <see cref="JitXdpHelperTests"/> runs the same tests on the JIT. The kernel comparison is in the Linux tests.
/// </summary>
public class XdpHelperTests
{
    protected virtual VmEngine Engine => VmEngine.Interpreter;

    private const byte AfInet = 2, AfInet6 = 10;
    private static readonly PhysicalAddress Mac2 = PhysicalAddress.Parse("02-00-00-00-00-02");
    private static readonly PhysicalAddress Mac3 = PhysicalAddress.Parse("02-00-00-00-00-03");
    private static readonly PhysicalAddress Gw = PhysicalAddress.Parse("0A-0B-0C-0D-0E-0F");

    private static RoutingTable Table() => new RoutingTable()
        .AddInterface(2, Mac2, mtu: 1500)
        .AddInterface(3, Mac3, mtu: 9000, forwarding: false)
        .AddAddress(2, "192.168.1.1/24")
        .AddAddress(2, "2001:db8:1::1/64")
        .AddRoute("10.0.0.0/8", 2, gateway: "192.168.1.254", metric: 20)
        .AddRoute("10.1.0.0/16", 2, gateway: "192.168.1.253", mtu: 1400)
        .AddRoute("10.9.0.0/16", 0, type: RouteType.Blackhole)
        .AddRoute("10.8.0.0/16", 0, type: RouteType.Unreachable)
        .AddRoute("10.7.0.0/16", 0, type: RouteType.Prohibit)
        .AddRoute("172.16.0.0/12", 2, gateway: "192.168.1.254", table: 100)
        .AddRoute("2001:db8:9::/48", 2, gateway: "2001:db8:1::fe")
        .AddNeighbour(2, "192.168.1.254", Gw)
        .AddNeighbour(2, "2001:db8:1::fe", Gw);

    private TestRunResult Run(byte[] frame, RoutingTable? routes)
    {
        using var vm = VmCollection.Load(Fixtures.Open("xdp_fib"), new VmOptions { Engine = Engine, Routes = routes });
        return vm.Program("xdp_fib").TestRun(new TestRunOptions { Data = frame });
    }

    private static byte[] Fib(uint flags, byte family, uint ifindex, string destination, ushort totLen = 100, uint tbid = 0)
    {
        var frame = new byte[14 + 8 + 64];
        frame[12] = 0x88;
        frame[13] = 0xb5;
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(18), flags);
        var p = frame.AsSpan(22);
        p[0] = family;
        BinaryPrimitives.WriteUInt16LittleEndian(p[6..], totLen);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], ifindex);
        IPAddress.Parse(destination).TryWriteBytes(p[32..], out _);
        BinaryPrimitives.WriteUInt32LittleEndian(p[48..], tbid);
        p[52..64].Fill(0xee);
        return frame;
    }

    private static byte[] Mtu(uint flags, uint ifindex, uint mtuLen, int lenDiff)
    {
        var frame = new byte[14 + 8 + 64];
        frame[12] = 0x88;
        frame[13] = 0xb5;
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(18), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(22), ifindex);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(26), mtuLen);
        BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(30), lenDiff);
        return frame;
    }

    private static int Rc(TestRunResult r) => (int)(uint)r.ReturnValue;
    private static ReadOnlySpan<byte> Params(TestRunResult r) => r.DataOut.AsSpan(22, 64);

    [Fact]
    public void FibLookupWithoutRoutingTableIsAFreshNamespace()
    {
        var frame = Fib(0, AfInet, 1, "10.1.2.3");
        var r = Run(frame, null);
        Assert.Equal(5, Rc(r)); // BPF_FIB_LKUP_RET_FWD_DISABLED: the loopback does not forward
        Assert.Equal(frame, r.DataOut);
        Assert.Equal(5, Rc(Run(Fib(0, AfInet6, 1, "2001:db8::1"), null)));
        Assert.Equal(-19, Rc(Run(Fib(0, AfInet, 2, "10.1.2.3"), null)));       // no such interface: -ENODEV
        // A table's own loopback forwards: no route is NOT_FWDED.
        Assert.Equal(4, Rc(Run(Fib(0, AfInet, 1, "10.1.2.3"), new RoutingTable())));
        Assert.Equal(-22, Rc(Run(Fib(1 << 8, AfInet, 1, "10.1.2.3"), null)));  // unknown flag: -EINVAL
        Assert.Equal(-97, Rc(Run(Fib(0, 7, 1, "10.1.2.3"), null)));           // family: -EAFNOSUPPORT
    }

    [Fact]
    public void FibLookupForwardsThroughTheGatewayWithItsNeighbour()
    {
        var r = Run(Fib(0, AfInet, 2, "10.2.3.4"), Table());
        Assert.Equal(0, Rc(r));
        var p = Params(r);
        Assert.Equal(1500, BinaryPrimitives.ReadUInt16LittleEndian(p[6..]));   // mtu_result
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(p[8..]));     // egress ifindex
        Assert.Equal(20u, BinaryPrimitives.ReadUInt32LittleEndian(p[12..]));   // rt_metric
        Assert.Equal(IPAddress.Parse("192.168.1.254"), new IPAddress(p.Slice(32, 4)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(p[48..]));    // no VLAN
        Assert.Equal(Mac2.GetAddressBytes(), p.Slice(52, 6).ToArray());       // smac
        Assert.Equal(Gw.GetAddressBytes(), p.Slice(58, 6).ToArray());         // dmac
    }

    [Fact]
    public void FibLookupExplainsWhyItDoesNotForward()
    {
        var table = Table();
        // Longer prefix, locked MTU 1400: too big, mtu_result says so.
        var frag = Run(Fib(0, AfInet, 2, "10.1.0.9", totLen: 1401), table);
        Assert.Equal(8, Rc(frag));
        Assert.Equal(1400, BinaryPrimitives.ReadUInt16LittleEndian(Params(frag)[6..]));
        // Its gateway has no neighbour: NO_NEIGH, with the gateway and egress already written...
        var noNeigh = Run(Fib(0, AfInet, 2, "10.1.0.9"), table);
        Assert.Equal(7, Rc(noNeigh));
        Assert.Equal(IPAddress.Parse("192.168.1.253"), new IPAddress(Params(noNeigh).Slice(32, 4)));
        // ...and SKIP_NEIGH forwards without touching the MACs.
        var skip = Run(Fib(4, AfInet, 2, "10.1.0.9"), table);
        Assert.Equal(0, Rc(skip));
        Assert.True(Params(skip)[52..].ToArray().All(b => b == 0xee));
        Assert.Equal(1, Rc(Run(Fib(0, AfInet, 2, "10.9.0.1"), table)));
        Assert.Equal(2, Rc(Run(Fib(0, AfInet, 2, "10.8.0.1"), table)));
        Assert.Equal(3, Rc(Run(Fib(0, AfInet, 2, "10.7.0.1"), table)));
        Assert.Equal(4, Rc(Run(Fib(0, AfInet, 2, "203.0.113.1"), table)));  // no route
        Assert.Equal(4, Rc(Run(Fib(0, AfInet, 2, "192.168.1.1"), table)));  // local address
        Assert.Equal(4, Rc(Run(Fib(0, AfInet, 2, "192.168.1.255"), table))); // broadcast
        Assert.Equal(5, Rc(Run(Fib(0, AfInet, 3, "10.2.3.4"), table)));    // forwarding off on ingress
        Assert.Equal(-19, Rc(Run(Fib(0, AfInet, 77, "10.2.3.4"), table)));  // no such ifindex: -ENODEV
    }

    [Fact]
    public void FibLookupDirectUsesTheNamedTable()
    {
        var table = Table();
        Assert.Equal(4, Rc(Run(Fib(0, AfInet, 2, "172.16.0.1"), table)));          // full lookup: local, main, default
        var direct = Run(Fib(1 | 8, AfInet, 2, "172.16.0.1", tbid: 100), table);
        Assert.Equal(0, Rc(direct));
        Assert.Equal(Gw.GetAddressBytes(), Params(direct).Slice(58, 6).ToArray());
        var missing = Run(Fib(1 | 8, AfInet, 2, "172.16.0.1", tbid: 4242), table);
        Assert.Equal(4, Rc(missing));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(Params(missing)[48..])); // tbid cleared, as the kernel does
    }

    [Fact]
    public void FibLookupIpv6()
    {
        var r = Run(Fib(0, AfInet6, 2, "2001:db8:9::5"), Table());
        Assert.Equal(0, Rc(r));
        Assert.Equal(1024u, BinaryPrimitives.ReadUInt32LittleEndian(Params(r)[12..])); // ip -6 route's default metric
        Assert.Equal(IPAddress.Parse("2001:db8:1::fe"), new IPAddress(Params(r).Slice(32, 16)));
        Assert.Equal(Gw.GetAddressBytes(), Params(r).Slice(58, 6).ToArray());
        Assert.Equal(4, Rc(Run(Fib(0, AfInet6, 2, "2001:db8:7::5"), Table())));
    }

    [Fact]
    public void CheckMtu()
    {
        // Without a table the receiving device is the loopback: MTU 65536.
        var lo = Run(Mtu(0, 0, 0, 0), null);
        Assert.Equal(0, Rc(lo));
        Assert.Equal(65536u, BinaryPrimitives.ReadUInt32LittleEndian(lo.DataOut.AsSpan(26)));
        Assert.Equal(-19, Rc(Run(Mtu(0, 2, 0, 0), null)));
        var table = Table();
        var fits = Run(Mtu(0, 2, 1500, 0), table);
        Assert.Equal(0, Rc(fits));
        Assert.Equal(1500u, BinaryPrimitives.ReadUInt32LittleEndian(fits.DataOut.AsSpan(26)));
        Assert.Equal(1, Rc(Run(Mtu(0, 2, 1501, 0), table)));
        Assert.Equal(1, Rc(Run(Mtu(0, 2, 1400, 101), table)));
        Assert.Equal(0, Rc(Run(Mtu(0, 2, 1600, -100), table)));
        Assert.Equal(-22, Rc(Run(Mtu(1, 2, 0, 0), table))); // BPF_MTU_CHK_SEGS is tc-only
        Assert.Equal(-19, Rc(Run(Mtu(0, 77, 0, 0), table)));
    }

    private ulong RunCall(HelperId helper)
    {
        using var e = new VmExecution();
        return VmProgram.Create("t", [Call((int)helper), Exit()], ProgramType.Xdp, options: new VmOptions { Engine = Engine }).Run(e);
    }

    [Fact]
    public void ClockAndNodeHelpers()
    {
        ulong before = (ulong)(DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        ulong tai = RunCall(HelperId.KtimeGetTaiNs);
        ulong after = (ulong)(DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;
        Assert.InRange(tai, before, after);
        ulong j1 = RunCall(HelperId.Jiffies64);
        Thread.Sleep(20);
        ulong j2 = RunCall(HelperId.Jiffies64);
        Assert.True(j2 > j1, $"jiffies did not advance: {j1} then {j2}");
        Assert.True(j1 >= 0xfffedb08UL, "jiffies start at INITIAL_JIFFIES");
        Assert.Equal(0UL, RunCall(HelperId.GetNumaNodeId));
    }

    private ulong RunProgram(params Instruction[] program)
    {
        using var e = new VmExecution();
        return VmProgram.Create("t", program, ProgramType.Unspec, options: new VmOptions { Engine = Engine }).Run(e);
    }

    [Theory]
    [InlineData(0x00636261, 0x00646261, 3, -1L)] // "abc" vs "abd"
    [InlineData(0x00646261, 0x00636261, 3, 1L)]
    [InlineData(0x00636261, 0x00646261, 2, 0L)]  // only the first two bytes
    [InlineData(0x00006261, 0x00636261, 4, -1L)] // "ab" ends first
    [InlineData(0x00636261, 0x00636261, 8, 0L)]  // equal, stops at the NUL
    [InlineData(0x000000e9, 0x00000041, 1, 1L)]  // bytes compare unsigned
    public void Strncmp(int s1, int s2, int size, long expected)
    {
        ulong r = RunProgram(
            St(AccessSize.DoubleWord, R10, -8, 0),
            St(AccessSize.Word, R10, -8, s1),
            St(AccessSize.DoubleWord, R10, -16, 0),
            St(AccessSize.Word, R10, -16, s2),
            MovR(R1, R10), Alu64(AluOperation.Add, R1, -8),
            Mov(R2, size),
            MovR(R3, R10), Alu64(AluOperation.Add, R3, -16),
            Call((int)HelperId.Strncmp),
            Exit());
        Assert.Equal(expected, (long)r);
    }

    [Fact]
    public void ProbeReadKernelCopiesReadableMemoryAndZeroesOnFault()
    {
        Instruction[] Read(long source, HelperId helper, int size) =>
        [
            St(AccessSize.DoubleWord, R10, -8, 0x00696868),   // "hhi\0"
            St(AccessSize.DoubleWord, R10, -16, 0x55555555),
            MovR(R1, R10), Alu64(AluOperation.Add, R1, -16),
            Mov(R2, size),
            source == 0 ? MovR(R3, R10) : Lddw(R3, source),
            source == 0 ? Alu64(AluOperation.Add, R3, -8) : Mov(R0, 0),
            Call((int)helper),
            Ldx(AccessSize.DoubleWord, R1, R10, -16),
            Alu64(AluOperation.Lsh, R0, 32),
            Alu64R(AluOperation.Or, R0, R1),
            Exit(),
        ];
        // Result: helper's return in the high half, dst's low 32 bits in the low half.
        Assert.Equal(0x00696868UL, RunProgram(Read(0, HelperId.ProbeReadKernel, 8)));
        Assert.Equal(0xfffffff2_00000000UL, RunProgram(Read(0x1000, HelperId.ProbeReadKernel, 8)));      // -EFAULT, zeroed
        Assert.Equal(0x00000004_00696868UL, RunProgram(Read(0, HelperId.ProbeReadKernelStr, 8)));     // "hhi" + NUL
        Assert.Equal(0x00000003_55006868UL, RunProgram(Read(0, HelperId.ProbeReadKernelStr, 3)));     // truncated: "hh" + NUL, the rest of dst untouched
        Assert.Equal(0xfffffff2_00000000UL, RunProgram(Read(0x1000, HelperId.ProbeReadKernelStr, 8)));
    }

    [Fact]
    public void MapLookupPercpuElemReadsTheNamedCpusValue()
    {
        if (SharpBpf.Maps.ManagedMap.PossibleCpus < 2)
            Assert.Skip("needs two CPUs");
        Instruction[] Lookup(string map, int cpu) =>
        [
            St(AccessSize.Word, R10, -4, 0),
            new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = map },
            MovR(R2, R10),
            Alu64(AluOperation.Add, R2, -4),
            Mov(R3, cpu),
            Call((int)HelperId.MapLookupPercpuElem),
            Jmp(JumpOperation.Jne, R0, 0, 2),
            Mov(R0, -1),
            Exit(),
            Ldx(AccessSize.DoubleWord, R0, R0, 0),
            Exit(),
        ];
        var spec = new CollectionSpec();
        spec.Maps.Add(new MapSpec { Name = "pc", Type = MapType.PercpuArray, KeySize = 4, ValueSize = 8, MaxEntries = 1 });
        spec.Maps.Add(new MapSpec { Name = "plain", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 1 });
        spec.Programs.Add(new ProgramSpec { Name = "cpu1", SectionName = "xdp", Type = ProgramType.Xdp, Instructions = [.. Lookup("pc", 1)] });
        spec.Programs.Add(new ProgramSpec { Name = "beyond", SectionName = "xdp", Type = ProgramType.Xdp, Instructions = [.. Lookup("pc", SharpBpf.Maps.ManagedMap.PossibleCpus)] });
        spec.Programs.Add(new ProgramSpec { Name = "plain", SectionName = "xdp", Type = ProgramType.Xdp, Instructions = [.. Lookup("plain", 0)] });
        using var vm = VmCollection.Load(spec, new VmOptions { Engine = Engine });
        var values = new byte[8 * SharpBpf.Maps.ManagedMap.PossibleCpus];
        for (int cpu = 0; cpu < SharpBpf.Maps.ManagedMap.PossibleCpus; cpu++)
            BinaryPrimitives.WriteUInt64LittleEndian(values.AsSpan(8 * cpu), 100UL + (ulong)cpu);
        vm.Map("pc").Update(new byte[4], values);
        vm.Map("plain").Update(new byte[4], BitConverter.GetBytes(7UL));
        var frame = new TestRunOptions { Data = new byte[64] };
        Assert.Equal(101UL, vm.Program("cpu1").TestRun(frame).ReturnValue);
        Assert.Equal(0xffffffffUL, vm.Program("beyond").TestRun(frame).ReturnValue & 0xffffffff); // NULL
        Assert.Equal(0xffffffffUL, vm.Program("plain").TestRun(frame).ReturnValue & 0xffffffff);  // not per-CPU: NULL
    }
}

/// <summary>The same helper tests on the JIT.</summary>
public class JitXdpHelperTests : XdpHelperTests
{
    protected override VmEngine Engine => VmEngine.Jit;
}
