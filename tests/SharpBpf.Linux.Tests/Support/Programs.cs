using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>Small hand-assembled programs and specs for kernel tests that do not need an object file.</summary>
internal static class Programs
{
    public static Instruction Mov(Register dst, int imm) => new(new OpCode(0xb7), dst, 0, 0, imm);
    public static Instruction MovReg(Register dst, Register src) => new(new OpCode(0xbf), dst, src, 0, 0);
    public static Instruction AddImm(Register dst, int imm) => new(new OpCode(0x07), dst, 0, 0, imm);
    public static Instruction StoreWord(Register dst, short offset, Register src) => new(new OpCode(0x63), dst, src, offset, 0);
    public static Instruction LoadWord(Register dst, Register src, short offset) => new(new OpCode(0x61), dst, src, offset, 0);
    public static Instruction LoadDouble(Register dst, Register src, short offset) => new(new OpCode(0x79), dst, src, offset, 0);
    public static Instruction AtomicAdd64(Register dst, short offset, Register src) => new(new OpCode(0xdb), dst, src, offset, 0);
    public static Instruction JeqImm(Register dst, int imm, short offset) => new(new OpCode(0x15), dst, 0, offset, imm);
    public static Instruction Call(HelperId helper) => new(new OpCode(0x85), 0, 0, 0, (int)helper);
    public static Instruction Exit() => new(new OpCode(0x95), 0, 0, 0, 0);

    public static Instruction LoadMap(Register dst, string map) =>
        new(new OpCode(0x18), dst, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = map };

    public static Instruction LoadMapValue(Register dst, string map, int offset) =>
        new(new OpCode(0x18), dst, (Register)LoadImmediateSource.MapValue, 0, (long)offset << 32) { Reference = map };

    /// <summary>
    /// An XDP program: counters[0] += 1 (atomically, the value at offset 0 of a u64), then returns the u32 at
    /// offset 0 of ".rodata" (the verdict), e.g. XDP_PASS.
    /// </summary>
    public static CollectionSpec CountingXdp(uint verdict = 2, MapType counterType = MapType.Array, MapPinning pinning = MapPinning.None)
    {
        var spec = new CollectionSpec { License = "GPL" };
        spec.Maps.Add(new MapSpec { Name = "counters", Type = counterType, KeySize = 4, ValueSize = 8, MaxEntries = 4, Pinning = pinning });
        spec.Maps.Add(new MapSpec
        {
            Name = ".rodata", Type = MapType.Array, KeySize = 4, ValueSize = 4, MaxEntries = 1,
            InitialValue = BitConverter.GetBytes(verdict), Freeze = true,
        });
        spec.Programs.Add(new ProgramSpec
        {
            Name = "count_pass",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            License = "GPL",
            Instructions =
            [
                Mov(Register.R1, 0),
                StoreWord(Register.R10, -4, Register.R1),
                MovReg(Register.R2, Register.R10),
                AddImm(Register.R2, -4),
                LoadMap(Register.R1, "counters"),
                Call(HelperId.MapLookupElem),
                JeqImm(Register.R0, 0, 2),
                Mov(Register.R1, 1),
                AtomicAdd64(Register.R0, 0, Register.R1),
                LoadMapValue(Register.R1, ".rodata", 0),
                LoadWord(Register.R0, Register.R1, 0),
                Exit(),
            ],
        });
        return spec;
    }

    /// <summary>
    /// A program the verifier refuses: it reads the map value without checking the lookup for NULL. Line info
    /// says the bad read is "return *value;" at bad.c:12.
    /// </summary>
    public static CollectionSpec UncheckedLookup()
    {
        var spec = new CollectionSpec { License = "GPL" };
        spec.Maps.Add(new MapSpec { Name = "values", Type = MapType.Hash, KeySize = 4, ValueSize = 4, MaxEntries = 8 });
        spec.Programs.Add(new ProgramSpec
        {
            Name = "bad_read",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            License = "GPL",
            Instructions =
            [
                Mov(Register.R1, 0),                        // 0
                StoreWord(Register.R10, -4, Register.R1),   // 1
                MovReg(Register.R2, Register.R10),          // 2
                AddImm(Register.R2, -4),                    // 3
                LoadMap(Register.R1, "values"),             // 4 (raw 4-5)
                Call(HelperId.MapLookupElem),               // 5 (raw 6)
                LoadWord(Register.R0, Register.R0, 0),      // 6 (raw 7): the NULL dereference
                Exit(),                                     // 7
            ],
            Lines =
            [
                new SourceLine(0, "bad.c", 9, 1, "    __u32 key = 0;"),
                new SourceLine(2, "bad.c", 10, 1, "    __u32 *value = bpf_map_lookup_elem(&values, &key);"),
                new SourceLine(6, "bad.c", 12, 5, "    return *value;"),
                new SourceLine(7, "bad.c", 13, 1, "}"),
            ],
        });
        return spec;
    }
}
