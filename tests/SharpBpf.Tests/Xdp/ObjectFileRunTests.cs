using SharpBpf.Objects;
using SharpBpf.Tests.Support;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Tests.Xdp;

/// <summary>clang-built objects run in the managed VM: maps, global data, per-CPU values, source lines in traps.</summary>
public class ObjectFileRunTests
{
    [Fact]
    public void XdpMapsCountsPacketsInMapsAndGlobalData()
    {
        var spec = ObjectFile.Open(Path.Combine(TestPaths.TestData, "xdp_maps.o"));
        using var collection = VmCollection.Load(spec);
        var program = collection.Program("xdp_count");
        using var execution = new VmExecution();
        using var context = new XdpContext();
        context.IngressIfindex = 3;
        for (int i = 0; i < 3; i++)
        {
            context.SetPacket(new byte[100]);
            Assert.Equal(XdpAction.Pass, program.RunXdp(execution, context, out var trap));
            Assert.Null(trap);
        }
        context.SetPacket(new byte[1600]); // over max_len (1500): dropped and counted in too_big
        Assert.Equal(XdpAction.Drop, program.RunXdp(execution, context, out _));

        // flows[3] = { packets, bytes }
        var flow = new byte[16];
        Assert.True(collection.Map("flows").TryLookup(BitConverter.GetBytes(3u), flow));
        Assert.Equal(4UL, BitConverter.ToUInt64(flow, 0));
        Assert.Equal(1900UL, BitConverter.ToUInt64(flow, 8));
        // .data: packets_seen (u64, starts at 7), drop_port (u32)
        var data = new byte[12];
        collection.Map(".data").TryLookup(BitConverter.GetBytes(0u), data);
        Assert.Equal(11UL, BitConverter.ToUInt64(data, 0));
        // .bss: total_bytes and too_big (clang places total_bytes first)
        var bss = new byte[16];
        collection.Map(".bss").TryLookup(BitConverter.GetBytes(0u), bss);
        Assert.Equal(1900UL, BitConverter.ToUInt64(bss, 0));
        Assert.Equal(1UL, BitConverter.ToUInt64(bss, 8));
        // verdicts is per-CPU: this execution runs as CPU 0.
        var verdicts = collection.Map("verdicts");
        var all = new byte[verdicts.UserValueSize];
        verdicts.TryLookup(BitConverter.GetBytes((uint)XdpAction.Pass), all);
        Assert.Equal(3UL, BitConverter.ToUInt64(all, 0));
        verdicts.TryLookup(BitConverter.GetBytes((uint)XdpAction.Drop), all);
        Assert.Equal(1UL, BitConverter.ToUInt64(all, 0));
    }

    [Fact]
    public void RodataIsReadOnlyToPrograms()
    {
        var spec = ObjectFile.Open(Path.Combine(TestPaths.TestData, "xdp_maps.o"));
        var program = spec.FindProgram("xdp_count")!;
        // Append a store into .rodata at the start of the program: r1 = &.rodata; *(u32*)r1 = 0.
        var store = new List<global::SharpBpf.Asm.Instruction>
        {
            new(new global::SharpBpf.Asm.OpCode(0x18), global::SharpBpf.Asm.Register.R2, (global::SharpBpf.Asm.Register)global::SharpBpf.Asm.LoadImmediateSource.MapValue, 0, 0) { Reference = ".rodata" },
            new(new global::SharpBpf.Asm.OpCode(0x62), global::SharpBpf.Asm.Register.R2, 0, 0, 0),
        };
        // Keep relative jumps valid: the prefix adds 3 raw slots before every jump source and target alike.
        program.Instructions = [.. store, .. program.Instructions];
        program.Lines = [];
        using var collection = VmCollection.Load(spec);
        using var execution = new VmExecution();
        using var context = new XdpContext();
        context.SetPacket(new byte[64]);
        Assert.Equal(XdpAction.Aborted, collection.Program("xdp_count").RunXdp(execution, context, out var trap));
        Assert.Equal(TrapKind.MemoryAccess, trap!.Kind);
        Assert.Equal(1, trap.InstructionIndex);
    }

    [Fact]
    public void TrapsNameTheSourceLine()
    {
        var spec = ObjectFile.Open(Path.Combine(TestPaths.TestData, "xdp_maps.o"));
        var program = spec.FindProgram("xdp_count")!;
        Assert.NotEmpty(program.Lines);
        using var collection = VmCollection.Load(spec);
        var vm = collection.Program("xdp_count");
        var line = vm.SourceLineAt(program.Lines[^1].InstructionIndex);
        Assert.NotNull(line);
        Assert.EndsWith("xdp_maps.c", line!.FileName);
    }
}
