using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Objects;

/// <summary>legacy_maps.c (struct bpf_map_def, "version") and map_in_map.c (inner maps, values, pinning, prog array).</summary>
public class MapDefinitionTests
{
    [Fact]
    public void ReadsLegacyMapDefinitionsAndVersion()
    {
        var spec = Fixtures.Open("legacy_maps");
        Assert.Equal(0x050f00u, spec.KernelVersion);
        var counters = spec.FindMap("counters")!;
        Assert.Equal((MapType.Array, 4u, 8u, 256u, 0u), (counters.Type, counters.KeySize, counters.ValueSize, counters.MaxEntries, counters.Flags));
        Assert.Equal("maps", counters.SectionName);
        var seen = spec.FindMap("seen")!;
        Assert.Equal((MapType.LruHash, 4u, 4u, 4096u), (seen.Type, seen.KeySize, seen.ValueSize, seen.MaxEntries));
        var program = Assert.Single(spec.Programs);
        Assert.Contains(program.Instructions, i => i.Reference == "counters" && i.Src == (Register)LoadImmediateSource.MapFd);
        Assert.Contains(program.Instructions, i => i.Reference == "seen" && i.Src == (Register)LoadImmediateSource.MapFd);
    }

    [Fact]
    public void ReadsInnerMapsAndInitialValues()
    {
        var spec = Fixtures.Open("map_in_map");
        var outer = spec.FindMap("outer")!;
        Assert.Equal(MapType.ArrayOfMaps, outer.Type);
        Assert.Equal((4u, 4u, 3u), (outer.KeySize, outer.ValueSize, outer.MaxEntries));
        Assert.NotNull(outer.InnerMap);
        Assert.Equal((MapType.Array, 4u, 4u, 4u), (outer.InnerMap.Type, outer.InnerMap.KeySize, outer.InnerMap.ValueSize, outer.InnerMap.MaxEntries));
        Assert.Equal([new MapSlotReference(0, "inner_a"), new MapSlotReference(2, "inner_b")], outer.InitialReferences);

        var outerHash = spec.FindMap("outer_hash")!;
        Assert.Equal(MapType.HashOfMaps, outerHash.Type);
        Assert.Equal((MapType.Hash, 8u, 8u, 64u), (outerHash.InnerMap!.Type, outerHash.InnerMap.KeySize, outerHash.InnerMap.ValueSize, outerHash.InnerMap.MaxEntries));
        Assert.Empty(outerHash.InitialReferences);
    }

    [Fact]
    public void ReadsPinningDevmapAndProgramArray()
    {
        var spec = Fixtures.Open("map_in_map");
        Assert.Equal(MapPinning.ByName, spec.FindMap("pinned_counts")!.Pinning);
        Assert.Equal(MapPinning.None, spec.FindMap("outer")!.Pinning);
        var ports = spec.FindMap("ports")!;
        Assert.Equal((MapType.Devmap, 4u, 8u, 8u), (ports.Type, ports.KeySize, ports.ValueSize, ports.MaxEntries));
        var jumps = spec.FindMap("jump_table")!;
        Assert.Equal((MapType.ProgArray, 4u, 4u, 2u), (jumps.Type, jumps.KeySize, jumps.ValueSize, jumps.MaxEntries));
        Assert.Equal([new MapSlotReference(1, "tail_target")], jumps.InitialReferences);
        Assert.NotNull(spec.FindProgram("tail_target"));
    }

    [Fact]
    public void ReadsCoreRelocationsTagsAndNamedDataSections()
    {
        var spec = Fixtures.Open("core");
        var program = spec.FindProgram("core_probe")!;
        Assert.Equal(ProgramType.Kprobe, program.Type);

        // CO-RE: field offsets of pid/parent/tgid, comm's existence and size, the task's size, an enum value, a type id.
        var kinds = program.CoreRelocations.Select(r => r.Kind).ToList();
        Assert.Contains(BtfCoreRelocationKind.FieldByteOffset, kinds);
        Assert.Contains(BtfCoreRelocationKind.FieldExists, kinds);
        Assert.Contains(BtfCoreRelocationKind.FieldByteSize, kinds);
        Assert.Contains(BtfCoreRelocationKind.TypeSize, kinds);
        Assert.Contains(BtfCoreRelocationKind.EnumValue, kinds);
        Assert.Contains(BtfCoreRelocationKind.TypeIdLocal, kinds);
        Assert.All(program.CoreRelocations, r => Assert.InRange(r.InstructionOffset, 0, InstructionCodec.RawLength(program.Instructions) - 1));
        var fieldOffsets = program.CoreRelocations.Where(r => r.Kind == BtfCoreRelocationKind.FieldByteOffset).ToList();
        Assert.All(fieldOffsets, r => Assert.Equal("task_struct", spec.Btf!.SkipQualifiers(r.TypeId).Name));
        Assert.Contains(fieldOffsets, r => r.AccessString == "0:0"); // task->pid
        Assert.Contains(fieldOffsets, r => r.AccessString == "0:2"); // task->parent
        Assert.Contains(fieldOffsets, r => r.AccessString == "0:1"); // parent->tgid

        // Tags and float.
        var btf = spec.Btf!;
        Assert.Contains(btf.Types, t => t is BtfDeclTag { Name: "struct_tag", ComponentIndex: -1 });
        Assert.Contains(btf.Types, t => t is BtfDeclTag { Name: "member_tag", ComponentIndex: 1 });
        Assert.Contains(btf.Types, t => t is BtfDeclTag { Name: "param_tag", ComponentIndex: 0 });
        Assert.Contains(btf.Types, t => t is BtfReference { Kind: BtfKind.TypeTag, Name: "user" });
        Assert.Contains(btf.Types, t => t is BtfFloat { Name: "float", Size: 4 });

        // Named global-data sections keep their names; kernel names drop the object prefix (they hold a second dot).
        var counters = spec.FindMap(".data.counters")!;
        Assert.Equal(16u, counters.ValueSize);
        Assert.Equal(".data.counters", counters.KernelName);
        Assert.False(counters.Freeze);
        var config = spec.FindMap(".rodata.config")!;
        Assert.True(config.Freeze);
        Assert.Equal(2u, BitConverter.ToUInt32(config.InitialValue));
        var strings = spec.FindMap(".rodata.str1.1")!;
        Assert.Equal("ppid %d\n\0"u8.ToArray(), strings.InitialValue);
        Assert.Equal(".rodata.str1.1", strings.KernelName);
        Assert.Contains(program.Instructions, i => i.Reference == ".rodata.str1.1" && i.Src == (Register)LoadImmediateSource.MapValue);
        Assert.Contains(program.Instructions, i => i.Reference == ".data.counters" && i.Src == (Register)LoadImmediateSource.MapValue && i.Constant == 8L << 32);
    }

    [Fact]
    public void TheVmFillsStaticallyInitialisedSlotsAsLibbpfDoes()
    {
        using var vm = SharpBpf.Vm.VmCollection.Load(Fixtures.Open("map_in_map"));
        var outer = (SharpBpf.Maps.MapOfMaps)vm.Map("outer");
        Assert.Same(vm.Map("inner_a"), outer.GetInnerMap(0));
        Assert.Null(outer.GetInnerMap(1));
        Assert.Same(vm.Map("inner_b"), outer.GetInnerMap(2));
        var slot = new byte[4];
        Assert.False(vm.Map("jump_table").TryLookup(BitConverter.GetBytes(0u), slot));
        Assert.True(vm.Map("jump_table").TryLookup(BitConverter.GetBytes(1u), slot));
        Assert.Equal(vm.Program("tail_target").Id, BitConverter.ToUInt32(slot));
    }
}
