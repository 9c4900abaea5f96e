using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Tests.Objects;

namespace SharpBpf.Tests.Btf;

/// <summary>
/// The CO-RE calculator against hand-made BTF: a local view of a struct (as a BPF program declares it) and a
/// target (as a kernel has it), with members moved, nested arrays, an anonymous struct, a bitfield, a missing
/// field, flavoured names and enums.
/// </summary>
public class BtfCoreRelocatorTests
{
    private const int Int = 1, Ptr = 2, Array = 3, Struct = 4, Enum = 6;

    private static uint[] Members(BtfBuilder b, params (string Name, uint Type, uint BitOffset, uint BitfieldSize)[] members) =>
        members.SelectMany(m => new[] { m.Name.Length == 0 ? 0 : b.Name(m.Name), m.Type, m.BitfieldSize << 24 | m.BitOffset }).ToArray();

    /// <summary>
    /// Local: [1] int, [2] struct inner {int x; int y;}, [3] inner[4], [4] struct outer___local {int a; inner arr[4];
    /// u8 flags:3; int missing;}, [5] u8, [6] enum color___local {RED = 0, PURPLE = 9, ORANGE = 10}, [7] ptr to [4].
    /// </summary>
    private static BtfSpec Local()
    {
        var b = new BtfBuilder();
        b.Int("int", 4, signed: true);                                                       // 1
        b.Type(b.Name("inner"), Struct, 2, 8, false, Members(b, ("x", 1, 0, 0), ("y", 1, 32, 0)));   // 2
        b.Type(0, Array, 0, 0, false, 2, 1, 4);                                              // 3
        b.Type(b.Name("outer___local"), Struct, 4, 44, true,
            Members(b, ("a", 1, 0, 0), ("arr", 3, 32, 0), ("flags", 5, 288, 3), ("missing", 1, 320, 0)));   // 4
        b.Int("unsigned char", 1);                                                           // 5
        b.Type(b.Name("color___local"), Enum, 3, 4, false, b.Name("RED"), 0, b.Name("PURPLE"), 9, b.Name("ORANGE"), 10); // 6
        b.Type(0, Ptr, 0, 4);                                                                // 7
        return BtfSpec.Parse(b.Build());
    }

    /// <summary>
    /// Target: [1] int, [2] u8, [3] struct inner {int pad; int y; int x;}, [4] inner[8], [5] struct outer {long pad0;
    /// struct {int a;}; inner arr[8]; u8 flags:3 at bit 902}, [6] long, [7] the anonymous struct, [8] enum color
    /// {RED = 5, GREEN = 6, PURPLE = 7}; with <paramref name="ambiguous"/> also [9] struct outer___v2 {int a;}.
    /// </summary>
    private static BtfSpec Target(bool ambiguous = false)
    {
        var b = new BtfBuilder();
        b.Int("int", 4, signed: true);                                                       // 1
        b.Int("unsigned char", 1);                                                           // 2
        b.Type(b.Name("inner"), Struct, 3, 12, false, Members(b, ("pad", 1, 0, 0), ("y", 1, 32, 0), ("x", 1, 64, 0)));  // 3
        b.Type(0, Array, 0, 0, false, 3, 1, 8);                                              // 4
        b.Type(b.Name("outer"), Struct, 4, 120, true,
            Members(b, ("pad0", 6, 0, 0), ("", 7, 64, 0), ("arr", 4, 128, 0), ("flags", 2, 902, 3)));   // 5
        b.Int("long", 8, signed: true);                                                      // 6
        b.Type(0, Struct, 1, 4, false, Members(b, ("a", 1, 0, 0)));                          // 7
        b.Type(b.Name("color"), Enum, 3, 4, false, b.Name("RED"), 5, b.Name("GREEN"), 6, b.Name("PURPLE"), 7); // 8
        if (ambiguous)
            b.Type(b.Name("outer___v2"), Struct, 1, 4, false, Members(b, ("a", 1, 0, 0)));   // 9
        return BtfSpec.Parse(b.Build());
    }

    private static BtfCoreRelocation Relo(BtfCoreRelocationKind kind, uint type, string access, int insn = 0) => new(insn, type, 0, access, kind);

    private static BtfCoreResult Calc(BtfCoreRelocationKind kind, uint type, string access, bool ambiguous = false) =>
        new BtfCoreRelocator(Local(), Target(ambiguous)).Calculate(Relo(kind, type, access));

    [Fact]
    public void FieldOffsetsFollowMembersThroughNestedStructsAndArrays()
    {
        // outer.arr[2].x: locally 4 + 2 * 8 + 0 = 20; in the target 16 + 2 * 12 + 8 = 48.
        var r = Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "0:1:2:0");
        Assert.Equal(20ul, r.LocalValue);
        Assert.Equal(48ul, r.TargetValue);
        Assert.False(r.Poison);
        Assert.Equal(4u, r.LocalSize);
        Assert.Equal(4u, r.TargetSize);
        Assert.Equal("[5] Struct 'outer'", r.Target);

        // outer.arr[2] (an array element): offset and size of the element.
        Assert.Equal(16ul + 24, Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "0:1:2").TargetValue);
        Assert.Equal(12ul, Calc(BtfCoreRelocationKind.FieldByteSize, 4, "0:1:2").TargetValue);
        // The root index: outer[1].a is one whole target struct further.
        Assert.Equal(120ul + 8, Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "1:0").TargetValue);
        Assert.Equal(96ul, Calc(BtfCoreRelocationKind.FieldByteSize, 4, "0:1").TargetValue);
    }

    [Fact]
    public void MembersOfAnonymousStructsAreFoundByName()
    {
        var r = Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "0:0");
        Assert.Equal(0ul, r.LocalValue);
        Assert.Equal(8ul, r.TargetValue); // the anonymous struct sits after the 8-byte pad0
        Assert.Equal(1ul, Calc(BtfCoreRelocationKind.FieldSigned, 4, "0:0").TargetValue);
    }

    [Fact]
    public void AMissingFieldDoesNotExistAndPoisonsItsAccess()
    {
        var exists = Calc(BtfCoreRelocationKind.FieldExists, 4, "0:3");
        Assert.Equal(1ul, exists.LocalValue);
        Assert.Equal(0ul, exists.TargetValue);
        Assert.False(exists.Poison);
        Assert.Null(exists.Target);

        Assert.True(Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "0:3").Poison);
        Assert.True(Calc(BtfCoreRelocationKind.FieldByteSize, 4, "0:3").Poison);
        Assert.Equal(1ul, Calc(BtfCoreRelocationKind.FieldExists, 4, "0:1:3:1").TargetValue);
        // arr[5] is past the local array's 4 elements: the local access string itself is bad.
        Assert.Throws<BtfCoreException>(() => Calc(BtfCoreRelocationKind.FieldExists, 4, "0:1:5:1"));
    }

    [Fact]
    public void BitfieldsGetTheLoadThatHoldsThemAndTheirShifts()
    {
        // Locally flags is bits 288..290: a 1-byte load at 36, shifted left 61 then right 61.
        var offset = Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "0:2");
        Assert.Equal(36ul, offset.LocalValue);
        Assert.False(offset.Validate); // compilers may lay bitfield loads out differently
        // In the target it is bits 902..904, across a byte boundary: a 2-byte load at 112.
        Assert.Equal(112ul, offset.TargetValue);
        Assert.Equal(2ul, Calc(BtfCoreRelocationKind.FieldByteSize, 4, "0:2").TargetValue);
        var left = Calc(BtfCoreRelocationKind.FieldLShiftU64, 4, "0:2");
        Assert.Equal(61ul, left.LocalValue);
        Assert.Equal(64ul - (902 + 3 - 112 * 8), left.TargetValue);
        Assert.Equal(61ul, Calc(BtfCoreRelocationKind.FieldRShiftU64, 4, "0:2").TargetValue);
        Assert.Equal(0ul, Calc(BtfCoreRelocationKind.FieldSigned, 4, "0:2").TargetValue);
    }

    [Fact]
    public void FlavouredNamesMatchTheirEssentialName()
    {
        Assert.Equal(5, BtfCoreRelocator.EssentialNameLength("outer___local"));
        Assert.Equal("task_struct", BtfCoreRelocator.EssentialName("task_struct___2"));
        Assert.Equal("a____b", BtfCoreRelocator.EssentialName("a____b")); // four underscores: no flavour
        Assert.Equal("x___", BtfCoreRelocator.EssentialName("x___"));

        Assert.Equal(1ul, Calc(BtfCoreRelocationKind.TypeExists, 4, "0").TargetValue);
        var size = Calc(BtfCoreRelocationKind.TypeSize, 4, "0");
        Assert.Equal(44ul, size.LocalValue);
        Assert.Equal(120ul, size.TargetValue);
        Assert.Equal(5ul, Calc(BtfCoreRelocationKind.TypeIdTarget, 4, "0").TargetValue);
        Assert.Equal(4ul, Calc(BtfCoreRelocationKind.TypeIdLocal, 4, "0").TargetValue);
        Assert.Equal(1ul, Calc(BtfCoreRelocationKind.TypeExists, 2, "0").TargetValue); // inner: no flavour needed
        // Anonymous types cannot be looked up by name.
        Assert.Throws<BtfCoreException>(() => Calc(BtfCoreRelocationKind.TypeExists, 7, "0"));
    }

    [Fact]
    public void EnumeratorsAreMatchedByName()
    {
        var purple = Calc(BtfCoreRelocationKind.EnumValue, 6, "1");
        Assert.Equal(9ul, purple.LocalValue);
        Assert.Equal(7ul, purple.TargetValue);
        Assert.Equal(1ul, Calc(BtfCoreRelocationKind.EnumValueExists, 6, "0").TargetValue);
        Assert.Equal(0ul, Calc(BtfCoreRelocationKind.EnumValueExists, 6, "2").TargetValue);
        Assert.True(Calc(BtfCoreRelocationKind.EnumValue, 6, "2").Poison);
    }

    [Fact]
    public void CandidatesThatDisagreeAreAnError()
    {
        // outer and outer___v2 both match the local outer___local, with 'a' at different offsets.
        var e = Assert.Throws<BtfCoreException>(() => Calc(BtfCoreRelocationKind.FieldByteOffset, 4, "0:0", ambiguous: true));
        Assert.Contains("ambiguous", e.Message);
        // Where they agree (the type exists in both), there is no ambiguity.
        Assert.Equal(1ul, Calc(BtfCoreRelocationKind.TypeExists, 4, "0", ambiguous: true).TargetValue);
    }

    [Fact]
    public void InstructionsArePatchedResizedOrPoisoned()
    {
        var relocator = new BtfCoreRelocator(Local(), Target());
        var ldxw = new Instruction(OpCode.Memory(InstructionClass.Ldx, AccessMode.Mem, AccessSize.Word), Register.R0, Register.R1, 20, 0);
        var lddwSize = new Instruction(new OpCode(0x18), Register.R2, Register.R0, 0, 44);
        var lddwMissing = new Instruction(new OpCode(0x18), Register.R3, Register.R0, 0, 40);
        var movExists = new Instruction(OpCode.Alu(InstructionClass.Alu64, AluOperation.Mov, OperandSource.Immediate), Register.R4, Register.R0, 0, 1);
        var exit = new Instruction(new OpCode(0x95), Register.R0, Register.R0, 0, 0);
        var program = new[] { ldxw, lddwSize, lddwMissing, movExists, exit };
        var relocations = new[]
        {
            Relo(BtfCoreRelocationKind.FieldByteOffset, 4, "0:1:2:0", insn: 0),
            Relo(BtfCoreRelocationKind.TypeSize, 4, "0", insn: 1),
            Relo(BtfCoreRelocationKind.FieldByteOffset, 4, "0:3", insn: 3),
            Relo(BtfCoreRelocationKind.FieldExists, 4, "0:3", insn: 5),
        };
        var patched = relocator.Apply(program, relocations, "p");

        Assert.Equal(48, patched[0].Offset);
        Assert.Equal(ldxw.OpCode, patched[0].OpCode);
        Assert.Equal(120L, patched[1].Constant);
        // The lddw of the missing field's offset: two slots, two calls to the invalid helper 0xbad2310.
        Assert.Equal(new OpCode(0x85), patched[2].OpCode);
        Assert.Equal(new OpCode(0x85), patched[3].OpCode);
        Assert.Equal(BtfCoreRelocator.PoisonHelperId, patched[2].Immediate);
        Assert.Equal(BtfCoreRelocator.PoisonHelperId, patched[3].Immediate);
        Assert.Equal(0L, patched[4].Constant);
        Assert.Equal(InstructionCodec.RawLength(program), InstructionCodec.RawLength(patched));

        // An instruction that does not hold what the object's BTF says is refused, naming where.
        var wrong = program.ToArray();
        wrong[0] = ldxw with { Offset = 24 };
        var e = Assert.Throws<BtfCoreException>(() => relocator.Apply(wrong, relocations, "p"));
        Assert.Contains("program 'p'", e.Message);
        Assert.Contains("instruction 0", e.Message);
        Assert.Contains("should be 20", e.Message);

        // A bitfield's load moves to the target's offset; its size comes from a FIELD_BYTE_SIZE relocation of its own.
        var flags = relocator.Apply([OpCodeLoad(AccessSize.Byte, 36), exit], [Relo(BtfCoreRelocationKind.FieldByteOffset, 4, "0:2", insn: 0)], "p");
        Assert.Equal(112, flags[0].Offset);
        Assert.Equal(OpCodeLoad(AccessSize.Byte, 0).OpCode, flags[0].OpCode);
    }

    [Fact]
    public void AFieldThatChangedSizeIsResizedOnlyWhenTheValueStaysTheSame()
    {
        // Local: struct s {unsigned int u; int i;}; target: struct s {unsigned long u; long i;}.
        var lb = new BtfBuilder();
        lb.Int("unsigned int", 4);                                                               // 1
        lb.Int("int", 4, signed: true);                                                          // 2
        lb.Type(lb.Name("s"), Struct, 2, 8, false, Members(lb, ("u", 1, 0, 0), ("i", 2, 32, 0)));  // 3
        var tb = new BtfBuilder();
        tb.Int("unsigned long", 8);                                                              // 1
        tb.Int("long", 8, signed: true);                                                         // 2
        tb.Type(tb.Name("s"), Struct, 2, 16, false, Members(tb, ("u", 1, 0, 0), ("i", 2, 64, 0))); // 3
        var relocator = new BtfCoreRelocator(BtfSpec.Parse(lb.Build()), BtfSpec.Parse(tb.Build()));
        var exit = new Instruction(new OpCode(0x95), Register.R0, Register.R0, 0, 0);
        var patched = relocator.Apply([OpCodeLoad(AccessSize.Word, 0), OpCodeLoad(AccessSize.Word, 4), exit],
            [Relo(BtfCoreRelocationKind.FieldByteOffset, 3, "0:0", insn: 0), Relo(BtfCoreRelocationKind.FieldByteOffset, 3, "0:1", insn: 1)], "p");
        // Unsigned: zero extension keeps the value, so the load becomes 8 bytes wide.
        Assert.Equal(OpCodeLoad(AccessSize.DoubleWord, 0).OpCode, patched[0].OpCode);
        // Signed: a 4-byte load of an 8-byte long would be wrong: poisoned.
        Assert.Equal(new OpCode(0x85), patched[1].OpCode);
        Assert.Equal(BtfCoreRelocator.PoisonHelperId, patched[1].Immediate);
    }

    private static Instruction OpCodeLoad(AccessSize size, short offset) =>
        new(OpCode.Memory(InstructionClass.Ldx, AccessMode.Mem, size), Register.R0, Register.R1, offset, 0);

    [Theory]
    [InlineData("core")]
    [InlineData("core_xdp")]
    public void AgainstItsOwnBtfAnObjectKeepsWhatTheCompilerWrote(string fixture)
    {
        // The managed VM's view: with the object's own types as target, every relocation resolves to the value
        // clang put in the instruction (Apply checks each one against our reading of the local types).
        var spec = Fixtures.Open(fixture);
        var relocator = new BtfCoreRelocator(spec.Btf!, spec.Btf!);
        foreach (var program in spec.Programs)
        {
            Assert.NotEmpty(program.CoreRelocations);
            var patched = relocator.Apply(program.Instructions, program.CoreRelocations, program.Name);
            // Bitfield relocations are not checked against the compiler (libbpf's rule: compilers may choose another
            // load for a bitfield); everything else must be as compiled.
            var unchecked_ = program.CoreRelocations.Where(r => !relocator.Calculate(r).Validate).Select(r => r.InstructionOffset).ToHashSet();
            int raw = 0;
            for (int i = 0; i < program.Instructions.Count; i++)
            {
                var (a, b) = (program.Instructions[i], patched[i]);
                if (!unchecked_.Contains(raw))
                    Assert.Equal((a.OpCode, a.Dst, a.Src, a.Offset, a.Constant), (b.OpCode, b.Dst, b.Src, b.Offset, b.Constant));
                raw += a.RawSize;
            }
            Assert.Equal(program.Instructions.Count, patched.Count);
        }
    }
}
