using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Tests.Vm;
using SharpBpf.Vm;
using SharpBpf.Xdp;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Xdp;

/// <summary>The XDP runtime on the interpreter; <c>Jit.JitXdpRuntimeTests</c> runs the same tests on the JIT.</summary>
public class XdpRuntimeTests
{
    /// <summary>The engine every program of these tests is loaded for.</summary>
    protected virtual VmEngine Engine => VmEngine.Interpreter;
    protected virtual JitTiering Tiering => JitTiering.Tiered;

    private VmOptions O() => VmOptions.Default with { Engine = Engine, JitTiering = Tiering };

    // r2 = ctx->data; r3 = ctx->data_end; if (data + 14 > data_end) return PASS; data[0] = 0xaa; return TX;
    private static readonly Instruction[] MarkFirstByte =
    [
        Ldx(AccessSize.Word, R2, R1, 0),
        Ldx(AccessSize.Word, R3, R1, 4),
        MovR(R4, R2),
        Alu64(AluOperation.Add, R4, 14),
        JmpR(JumpOperation.Jgt, R4, R3, 3),
        St(AccessSize.Byte, R2, 0, 0xaa),
        Mov(R0, 3),
        Exit(),
        Mov(R0, 2),
        Exit(),
    ];

    [Fact]
    public void ContextLoadsGivePacketPointersAndWritesReachTheFrame()
    {
        var program = VmProgram.Create("mark", MarkFirstByte, options: O());
        var packet = new byte[60];
        var result = program.TestRun(new TestRunOptions { Data = packet });
        Assert.Equal(XdpAction.Tx, result.Action);
        Assert.Equal(0xaa, result.DataOut[0]);
        Assert.Equal(60, result.DataOut.Length);
        Assert.Equal(Engine.ToName(), result.Engine);

        var shortResult = program.TestRun(new TestRunOptions { Data = new byte[10] });
        Assert.Equal(XdpAction.Pass, shortResult.Action);
        Assert.Equal(new byte[10], shortResult.DataOut);
    }

    [Fact]
    public void ReadingPastDataEndIsAbortedNotACrash()
    {
        // Reads data[100] of a 20-byte packet without a bounds check.
        var program = VmProgram.Create("oob", [Ldx(AccessSize.Word, R2, R1, 0), Ldx(AccessSize.Byte, R0, R2, 100), Exit()], options: O());
        using var e = new VmExecution();
        using var ctx = new XdpContext();
        ctx.SetPacket(new byte[20]);
        var action = program.RunXdp(e, ctx, out var trap);
        Assert.Equal(XdpAction.Aborted, action);
        Assert.NotNull(trap);
        Assert.Equal(1, trap!.InstructionIndex);
        Assert.Equal(XdpAction.Aborted, program.TestRun(new TestRunOptions { Data = new byte[20] }).Action);
    }

    [Fact]
    public void ContextIsReadOnlyAndOnlyWordLoadsAreAllowed()
    {
        using var e = new VmExecution();
        using var ctx = new XdpContext();
        ctx.SetPacket(new byte[20]);
        Assert.Equal(XdpAction.Aborted, VmProgram.Create("w", [St(AccessSize.Word, R1, 12, 1), Mov(R0, 2), Exit()], options: O()).RunXdp(e, ctx, out _));
        Assert.Equal(XdpAction.Aborted, VmProgram.Create("dw", [Ldx(AccessSize.DoubleWord, R0, R1, 0), Exit()], options: O()).RunXdp(e, ctx, out _));
        ctx.IngressIfindex = 7;
        ctx.RxQueueIndex = 3;
        var fields = VmProgram.Create("f", [Ldx(AccessSize.Word, R0, R1, 12), Ldx(AccessSize.Word, R2, R1, 16), Alu64(AluOperation.Lsh, R0, 8), Alu64R(AluOperation.Or, R0, R2), Exit()], options: O());
        Assert.Equal((XdpAction)(7 << 8 | 3), fields.RunXdp(e, ctx, out _));
    }

    [Fact]
    public void RepeatedRunsAccumulateWritesAsInTheKernel()
    {
        // data[0] += 1 when the packet has a byte.
        var program = VmProgram.Create("inc",
        [
            Ldx(AccessSize.Word, R2, R1, 0),
            Ldx(AccessSize.Word, R3, R1, 4),
            MovR(R4, R2),
            Alu64(AluOperation.Add, R4, 1),
            JmpR(JumpOperation.Jgt, R4, R3, 3),
            Ldx(AccessSize.Byte, R5, R2, 0),
            Alu64(AluOperation.Add, R5, 1),
            Stx(AccessSize.Byte, R2, R5, 0),
            Mov(R0, 2),
            Exit(),
        ], options: O());
        var result = program.TestRun(new TestRunOptions { Data = new byte[] { 10, 0, 0 }, Repeat = 5 });
        Assert.Equal(15, result.DataOut[0]);
        Assert.True(result.NanosecondsPerRun > 0);
    }

    [Fact]
    public void AdjustHeadGrowsTheFrontAndAdjustTailShrinksTheEnd()
    {
        // r6 = ctx; adjust_head(ctx, -4); adjust_tail(ctx, -10); *(u32*)data = 0x04030201; return PASS
        var program = VmProgram.Create("adjust",
        [
            MovR(R6, R1),
            Mov(R2, -4),
            Call((int)HelperId.XdpAdjustHead),
            JmpR(JumpOperation.Jne, R0, R0, 0), // no-op (keeps r0 read)
            MovR(R1, R6),
            Mov(R2, -10),
            Call((int)HelperId.XdpAdjustTail),
            Ldx(AccessSize.Word, R2, R6, 0),
            Ldx(AccessSize.Word, R3, R6, 4),
            MovR(R4, R2),
            Alu64(AluOperation.Add, R4, 4),
            JmpR(JumpOperation.Jgt, R4, R3, 1),
            St(AccessSize.Word, R2, 0, 0x04030201),
            Mov(R0, 2),
            Exit(),
        ], options: O());
        var packet = Enumerable.Range(0, 40).Select(i => (byte)i).ToArray();
        var result = program.TestRun(new TestRunOptions { Data = packet });
        Assert.Equal(XdpAction.Pass, result.Action);
        Assert.Equal(34, result.DataOut.Length);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, result.DataOut[..4]);
        Assert.Equal(packet[..30], result.DataOut[4..]);
    }

    [Fact]
    public void EveryPacketGetsAZeroedHeadroomEvenInAReusedFrame()
    {
        // adjust_head(ctx, -2); data[0] += 1; return PASS: data[0] is 1 when the claimed headroom was zero, as in the
        // kernel's test run; a frame reused for the next packet must not show the previous packet's bytes.
        var program = VmProgram.Create("headroom",
        [
            MovR(R6, R1),
            Mov(R2, -2),
            Call((int)HelperId.XdpAdjustHead),
            Ldx(AccessSize.Word, R2, R6, 0),
            Ldx(AccessSize.Word, R3, R6, 4),
            MovR(R4, R2),
            Alu64(AluOperation.Add, R4, 2),
            JmpR(JumpOperation.Jgt, R4, R3, 3),
            Ldx(AccessSize.Byte, R5, R2, 0),
            Alu64(AluOperation.Add, R5, 1),
            Stx(AccessSize.Byte, R2, R5, 0),
            Mov(R0, 2),
            Exit(),
        ], options: O());
        using var e = new VmExecution();
        using var ctx = new XdpContext();
        for (int i = 0; i < 3; i++)
        {
            ctx.SetPacket(new byte[60]);
            Assert.Equal(XdpAction.Pass, program.RunXdp(e, ctx, out _));
            Assert.Equal(62, ctx.Packet.Length);
            Assert.Equal(1, ctx.Packet[0]);
        }
    }

    [Fact]
    public void AdjustHeadBeyondTheHeadroomFails()
    {
        var program = VmProgram.Create("toofar", [Mov(R2, -300), Call((int)HelperId.XdpAdjustHead), Exit()], options: O());
        var result = program.TestRun(new TestRunOptions { Data = new byte[64] });
        Assert.Equal(unchecked((uint)-Errno.EINVAL), (uint)result.ReturnValue);
        Assert.Equal(64, result.DataOut.Length);
    }

    [Fact]
    public void RedirectIsRecorded()
    {
        using var e = new VmExecution();
        using var ctx = new XdpContext();
        ctx.SetPacket(new byte[64]);
        var program = VmProgram.Create("redirect", [Mov(R1, 5), Mov(R2, 0), Call((int)HelperId.Redirect), Exit()], options: O());
        Assert.Equal(XdpAction.Redirect, program.RunXdp(e, ctx, out _));
        Assert.Equal(new XdpRedirect(XdpRedirectKind.Interface, 5, null, 0), e.Redirect);
    }

    [Theory]
    [InlineData(2UL, XdpAction.Pass, false)]                  // a miss returns the fallback action
    [InlineData((1UL << 3) | 1, XdpAction.Redirect, true)]     // BPF_F_BROADCAST redirects without a lookup
    [InlineData((1UL << 3) | (1UL << 4), XdpAction.Redirect, true)] // ... also excluding the ingress device
    [InlineData(1UL << 5, XdpAction.Aborted, false)]           // an unknown flag bit aborts, as in the kernel
    public void RedirectMapFlagsAsTheKernel(ulong flags, XdpAction expected, bool redirected)
    {
        var spec = new CollectionSpec();
        spec.Maps.Add(new MapSpec { Name = "ports", Type = MapType.Devmap, KeySize = 4, ValueSize = 4, MaxEntries = 4 });
        spec.Programs.Add(new ProgramSpec
        {
            Name = "bcast",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            Instructions =
            [
                new Instruction(new OpCode(0x18), R1, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = "ports" },
                Mov(R2, 0),
                Lddw(R3, (long)flags),
                Call((int)HelperId.RedirectMap),
                Exit(),
            ],
        });
        using var collection = VmCollection.Load(spec, O());
        using var e = new VmExecution();
        using var ctx = new XdpContext();
        ctx.SetPacket(new byte[60]);
        Assert.Equal(expected, collection.Program("bcast").RunXdp(e, ctx, out var trap));
        Assert.Null(trap);
        Assert.Equal(redirected, e.Redirect is not null);
    }

    [Fact]
    public void MapLookupGivesAWritableValueAndGlobalDataResolves()
    {
        var spec = new CollectionSpec();
        spec.Maps.Add(new MapSpec { Name = "counts", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 4 });
        spec.Maps.Add(new MapSpec { Name = ".data", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 1, InitialValue = [40, 0, 0, 0, 0, 0, 0, 0] });
        spec.Programs.Add(new ProgramSpec
        {
            Name = "count",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            Instructions =
            [
                St(AccessSize.Word, R10, -4, 2),                                   // key = 2
                new Instruction(new OpCode(0x18), R1, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = "counts" },
                MovR(R2, R10),
                Alu64(AluOperation.Add, R2, -4),
                Call((int)HelperId.MapLookupElem),
                Jmp(JumpOperation.Jeq, R0, 0, 6),
                Mov(R1, 1),
                Atomic(AccessSize.DoubleWord, R0, R1, 0, AtomicOperation.Add),
                new Instruction(new OpCode(0x18), R2, (Register)LoadImmediateSource.MapValue, 0, 0) { Reference = ".data" },
                Ldx(AccessSize.DoubleWord, R3, R2, 0),
                Alu64(AluOperation.Add, R3, 2),
                Stx(AccessSize.DoubleWord, R2, R3, 0),
                Mov(R0, 2),
                Exit(),
            ],
        });
        using var collection = VmCollection.Load(spec, new VmOptions { Engine = Engine, JitTiering = Tiering, CreateMap = s => new TestArrayMap(s) });
        var program = collection.Program("count");
        for (int i = 0; i < 3; i++)
            Assert.Equal(XdpAction.Pass, program.TestRun(new TestRunOptions { Data = new byte[64] }).Action);
        var value = new byte[8];
        Assert.True(collection.Map("counts").TryLookup(BitConverter.GetBytes(2u), value));
        Assert.Equal(3UL, BitConverter.ToUInt64(value));
        Assert.True(collection.Map(".data").TryLookup(BitConverter.GetBytes(0u), value));
        Assert.Equal(46UL, BitConverter.ToUInt64(value));
    }

    [Fact]
    public void AMapValuePointerCannotReachPastTheValue()
    {
        var spec = new CollectionSpec();
        spec.Maps.Add(new MapSpec { Name = "m", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 4 });
        spec.Programs.Add(new ProgramSpec
        {
            Name = "p",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            Instructions =
            [
                St(AccessSize.Word, R10, -4, 0),
                new Instruction(new OpCode(0x18), R1, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = "m" },
                MovR(R2, R10),
                Alu64(AluOperation.Add, R2, -4),
                Call((int)HelperId.MapLookupElem),
                Jmp(JumpOperation.Jeq, R0, 0, 1),
                St(AccessSize.DoubleWord, R0, 8, 1),   // one past the value: the next element
                Mov(R0, 2),
                Exit(),
            ],
        });
        using var collection = VmCollection.Load(spec, new VmOptions { Engine = Engine, JitTiering = Tiering, CreateMap = s => new TestArrayMap(s) });
        Assert.Equal(XdpAction.Aborted, collection.Program("p").TestRun(new TestRunOptions { Data = new byte[64] }).Action);
    }
}

public class XdpOutputHelperTests
{
    [Fact]
    public void PerfEventOutputReachesTheManagedReader()
    {
        var spec = new CollectionSpec();
        spec.Maps.Add(new MapSpec { Name = "events", Type = MapType.PerfEventArray, KeySize = 4, ValueSize = 4, MaxEntries = (uint)Environment.ProcessorCount });
        spec.Programs.Add(new ProgramSpec
        {
            Name = "p",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            Instructions =
            [
                Lddw(R2, 0x1122334455667788),
                Stx(AccessSize.DoubleWord, R10, R2, -8),
                new Instruction(new OpCode(0x18), R2, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = "events" },
                Lddw(R3, 0xffffffff),          // BPF_F_CURRENT_CPU
                MovR(R4, R10),
                Alu64(AluOperation.Add, R4, -8),
                Mov(R5, 8),
                Call((int)HelperId.PerfEventOutput),
                Mov(R0, 2),
                Exit(),
            ],
        });
        using var collection = VmCollection.Load(spec);
        var events = (SharpBpf.Maps.PerfEventArrayMap)collection.Map("events");
        events.OpenAll();
        Assert.Equal(XdpAction.Pass, collection.Program("p").TestRun(new TestRunOptions { Data = new byte[64] }).Action);
        Assert.True(events.TryRead(out var record));
        Assert.Equal(0x1122334455667788UL, BitConverter.ToUInt64(record.Data));
    }
}
