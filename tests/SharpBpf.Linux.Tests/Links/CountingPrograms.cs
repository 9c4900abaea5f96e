using System.Buffers.Binary;
using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Links;

/// <summary>
/// XDP programs for attach tests, built as instructions (no object file needed): each counts the fixture's UDP
/// frames (<see cref="Traffic.Port"/>) in its own one-slot array map and drops them; other frames pass.
/// </summary>
internal static class CountingPrograms
{
    /// <summary>A collection with program <paramref name="name"/> and its counter map <c>{name}_n</c>.</summary>
    public static CollectionSpec Spec(string name)
    {
        var map = name + "_n";
        var spec = new CollectionSpec { License = "GPL" };
        spec.Maps.Add(new MapSpec { Name = map, Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 1 });
        spec.Programs.Add(new ProgramSpec
        {
            Name = name,
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            License = "GPL",
            Instructions =
            [
                I(0x61, Register.R2, Register.R1, 0, 0),        //  0: r2 = ctx->data
                I(0x61, Register.R3, Register.R1, 4, 0),        //  1: r3 = ctx->data_end
                I(0xbf, Register.R4, Register.R2, 0, 0),        //  2: r4 = r2
                I(0x07, Register.R4, 0, 0, 42),                 //  3: r4 += 14 + 20 + 8
                I(0x2d, Register.R4, Register.R3, 15, 0),       //  4: if r4 > r3 goto pass
                I(0x71, Register.R4, Register.R2, 23, 0),       //  5: r4 = ip->protocol
                I(0x55, Register.R4, 0, 13, 17),                //  6: if r4 != UDP goto pass
                I(0x69, Register.R4, Register.R2, 36, 0),       //  7: r4 = udp->dest (network order)
                I(0x55, Register.R4, 0, 11, BinaryPrimitives.ReverseEndianness(Traffic.Port)), // 8: if not our port goto pass
                I(0x62, Register.R10, 0, -4, 0),                //  9: *(u32 *)(r10 - 4) = 0 (key)
                I(0xbf, Register.R2, Register.R10, 0, 0),       // 10: r2 = r10
                I(0x07, Register.R2, 0, 0, -4),                 // 11: r2 += -4
                I(0x18, Register.R1, (Register)LoadImmediateSource.MapFd, 0, 0) with { Reference = map }, // 12-13: r1 = map
                I(0x85, 0, 0, 0, (int)HelperId.MapLookupElem),  // 14: r0 = bpf_map_lookup_elem(map, &key)
                I(0x15, Register.R0, 0, 2, 0),                  // 15: if r0 == 0 goto drop
                I(0xb7, Register.R1, 0, 0, 1),                  // 16: r1 = 1
                I(0xdb, Register.R0, Register.R1, 0, 0),        // 17: lock *(u64 *)(r0 + 0) += r1
                I(0xb7, Register.R0, 0, 0, 1),                  // 18: drop: r0 = XDP_DROP
                I(0x95, 0, 0, 0, 0),                            // 19: exit
                I(0xb7, Register.R0, 0, 0, 2),                  // 20: pass: r0 = XDP_PASS
                I(0x95, 0, 0, 0, 0),                            // 21: exit
            ],
        });
        return spec;
    }

    private static Instruction I(byte opCode, Register dst, Register src, short offset, long constant) =>
        new(new OpCode(opCode), dst, src, offset, constant);
}

/// <summary>A loaded counting program with its map, for attach tests.</summary>
internal sealed class Loaded : IDisposable
{
    private readonly BpfCollection _collection;
    private readonly string _name;

    private Loaded(BpfCollection collection, string name)
    {
        _collection = collection;
        _name = name;
    }

    public static Loaded Load(string name) => new(BpfCollection.Load(CountingPrograms.Spec(name)), name);

    public BpfProgram Program => _collection.Program(_name);

    public uint Id => Program.Id;

    /// <summary>How many of the fixture's UDP frames this program has seen.</summary>
    public ulong Count => _collection.Map(_name + "_n").TryLookup<uint, ulong>(0, out var value) ? value : 0;

    /// <summary>The count once it reached <paramref name="expected"/> (frames still queued in the veth reach XDP shortly), or after 5 s.</summary>
    public ulong WaitForCount(ulong expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Count < expected && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        return Count;
    }

    public void Dispose() => _collection.Dispose();
}
