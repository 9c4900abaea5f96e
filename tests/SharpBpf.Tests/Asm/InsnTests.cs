using SharpBpf.Asm;
using SharpBpf.Platform;
using static SharpBpf.Asm.Register;

namespace SharpBpf.Tests.Asm;

/// <summary>The C# DSL against raw encodings written out by hand from RFC 9669.</summary>
public class InsnTests
{
    private static string Hex(params Instruction[] insns) =>
        string.Join(" ", Convert.ToHexString(InstructionCodec.Encode(insns)).ToLowerInvariant().Chunk(16).Select(c => new string(c)));

    public static TheoryData<string, string> Encodings() => new()
    {
        { Hex(Insn.Mov(R0, 2)), "b700000002000000" },
        { Hex(Insn.Mov(R6, R1)), "bf16000000000000" },
        { Hex(Insn.Mov32(R0, -1)), "b4000000ffffffff" },
        { Hex(Insn.Add32(R1, R2)), "0c21000000000000" },
        { Hex(Insn.Sub(R1, 5)), "1701000005000000" },
        { Hex(Insn.Mul32(R3, R4)), "2c43000000000000" },
        { Hex(Insn.Div(R1, 3)), "3701000003000000" },
        { Hex(Insn.SDiv(R1, R2)), "3f21010000000000" },
        { Hex(Insn.SDiv32(R1, 7)), "3401010007000000" },
        { Hex(Insn.Mod32(R1, R2)), "9c21000000000000" },
        { Hex(Insn.SMod(R1, -3)), "97010100fdffffff" },
        { Hex(Insn.Or(R1, 0x40)), "4701000040000000" },
        { Hex(Insn.And32(R1, 0xff)), "54010000ff000000" },
        { Hex(Insn.Xor(R1, R1)), "af11000000000000" },
        { Hex(Insn.Lsh(R1, 32)), "6701000020000000" },
        { Hex(Insn.Rsh32(R1, R2)), "7c21000000000000" },
        { Hex(Insn.Arsh(R1, 63)), "c70100003f000000" },
        { Hex(Insn.Neg(R2)), "8702000000000000" },
        { Hex(Insn.Neg32(R2)), "8402000000000000" },
        { Hex(Insn.MovSx(R1, R2, 32)), "bf21200000000000" },
        { Hex(Insn.MovSx32(R1, R2, 8)), "bc21080000000000" },
        { Hex(Insn.ToLittleEndian(R1, 16)), "d401000010000000" },
        { Hex(Insn.ToBigEndian(R1, 64)), "dc01000040000000" },
        { Hex(Insn.ByteSwap(R1, 32)), "d701000020000000" },
        { Hex(Insn.LoadImm64(R1, 0x1122334455667788)), "1801000088776655 0000000044332211" },
        { Hex(Insn.LoadMapFd(R1, "stats")), "1811000000000000 0000000000000000" },
        { Hex(Insn.LoadMapValue(R2, ".bss", 8)), "1822000000000000 0000000008000000" },
        { Hex(Insn.LoadMem(Size.W, R0, R1, 8)), "6110080000000000" },
        { Hex(Insn.LoadMem(Size.DW, R0, R10, -8)), "79a0f8ff00000000" },
        { Hex(Insn.LoadMemSx(Size.B, R0, R1, 1)), "9110010000000000" },
        { Hex(Insn.StoreImm(Size.H, R10, -2, 0x1234)), "6a0afeff34120000" },
        { Hex(Insn.StoreMem(Size.B, R1, 3, R2)), "7321030000000000" },
        { Hex(Insn.Atomic(AtomicOperation.FetchAdd, Size.DW, R10, -8, R1)), "db1af8ff01000000" },
        { Hex(Insn.Atomic(AtomicOperation.CmpXchg, Size.W, R1, 0, R2)), "c3210000f1000000" },
        { Hex(Insn.LoadAbs(Size.H, 12)), "280000000c000000" },
        { Hex(Insn.LoadInd(Size.B, R6, 14)), "506000000e000000" },
        { Hex(Insn.Ja(-1)), "0500ffff00000000" },
        { Hex(Insn.Ja32(100000)), "06000000a0860100" },
        { Hex(Insn.JumpIf(JumpOperation.Jgt, R1, 5, 3)), "2501030005000000" },
        { Hex(Insn.JumpIf(JumpOperation.Jsle, R1, R2, -4)), "dd21fcff00000000" },
        { Hex(Insn.JumpIf32(JumpOperation.Jne, R1, 0, 1)), "5601010000000000" },
        { Hex(Insn.JumpIf32(JumpOperation.Jset, R1, R3, 2)), "4e31020000000000" },
        { Hex(Insn.Call(HelperId.MapLookupElem)), "8500000001000000" },
        { Hex(Insn.CallLocal(4)), "8510000004000000" },
        { Hex(Insn.CallX(R3)), "8d03000000000000" },
        { Hex(Insn.Exit()), "9500000000000000" },
    };

    [Theory]
    [MemberData(nameof(Encodings))]
    public void EncodesAsTheIsaSays(string actual, string expected) => Assert.Equal(expected, actual);

    [Fact]
    public void EveryDslInstructionIsValid()
    {
        foreach (var row in Encodings())
        {
            var bytes = Convert.FromHexString(row.Data.Item1.Replace(" ", "", StringComparison.Ordinal));
            var insn = InstructionCodec.Decode(bytes)[0];
            InstructionValidator.ValidateInstruction(insn, 0);
        }
    }

    [Fact]
    public void BuilderResolvesLabelsCountingLddwAsTwoSlots()
    {
        var program = new InsnBuilder
        {
            Insn.Label("top"),
            Insn.JumpIf(JumpOperation.Jeq, R1, 0, "out"),
            Insn.LoadMapFd(R1, "stats"),
            Insn.CallLocal("helper"),
            Insn.Ja32("out"),
            Insn.Ja("top"),
            Insn.Label("out"),
            Insn.Mov(R0, 0),
            Insn.Exit(),
            Insn.Label("helper"),
            Insn.Exit(),
        }.Build();
        // slots: 0 jeq, 1-2 lddw, 3 call, 4 ja32, 5 ja, 6 mov, 7 exit, 8 exit
        Assert.Equal(5, program[0].Offset);
        Assert.Null(program[0].Reference);
        Assert.Equal("stats", program[1].Reference);
        Assert.Equal(4, program[2].Immediate);
        Assert.Equal(1, program[3].Immediate);
        Assert.Equal(-6, program[4].Offset);
        InstructionValidator.Validate(program);
        Assert.Equal(program, Assembler.Assemble(Disassembler.Disassemble(program, AsmSyntax.Conformance))
            .Select((insn, i) => insn with { Reference = program[i].Reference }).ToList());
    }

    [Fact]
    public void BuilderKeepsCallsToOtherFunctionsAndRefusesUnknownJumpLabels()
    {
        var calls = new InsnBuilder { Insn.CallLocal("elsewhere"), Insn.Exit() }.Build();
        Assert.Equal("elsewhere", calls[0].Reference);
        var e = Assert.Throws<InstructionException>(() => new InsnBuilder { Insn.Mov(R0, 0), Insn.Ja("nowhere"), Insn.Exit() }.Build());
        Assert.Equal("instruction 1: unknown label 'nowhere'", e.Message);
        Assert.Throws<ArgumentException>(() => new InsnBuilder { Insn.Label("a"), Insn.Label("a") });
    }

    [Fact]
    public void DslRefusesImpossibleOperands()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Insn.MovSx32(R1, R2, 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => Insn.ByteSwap(R1, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => Insn.JumpIf(JumpOperation.Exit, R1, 0, 0));
    }
}
