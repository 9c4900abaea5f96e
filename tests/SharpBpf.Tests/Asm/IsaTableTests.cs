using SharpBpf.Asm;

namespace SharpBpf.Tests.Asm;

/// <summary>Every row of the ISA table: encode, decode, validate, assemble and disassemble a sample instruction.</summary>
public class IsaTableTests
{
    public static TheoryData<int> EntryIndexes()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < IsaTable.Entries.Count; i++)
            data.Add(i);
        return data;
    }

    /// <summary>A sample of the entry with every used field set to a distinct non-zero value.</summary>
    public static Instruction Sample(IsaEntry e)
    {
        var insn = e.Template;
        if (e.UsesDst)
            insn = insn with { Dst = Register.R1 };
        if (e.UsesSrcRegister)
            insn = insn with { Src = Register.R2 };
        if ((e.Unused & UnusedFields.Offset) == 0 && e.Selector != SelectorField.Offset)
            insn = insn with { Offset = 3 };
        if ((e.Unused & UnusedFields.Immediate) == 0 && e.Selector != SelectorField.Immediate)
            insn = insn with { Constant = e.Form == OperandForm.DstImm64 ? 0x5_0000_0004L : 4 };
        return insn;
    }

    [Fact]
    public void TheTableHasEveryInstructionGroupOfTheIsa()
    {
        // 12 binary ALU ops x K/X x 2 classes + sdiv/smod (8) + movsx (5) + neg (2) + END (9)
        // + ja, ja32, 11 conditions x K/X x 2 classes, call x3, callx, exit + lddw x7 + legacy 6
        // + ldx 4, ldxs 3, st 4, stx 4 + atomics 10 x 2.
        int expected = 48 + 8 + 5 + 2 + 9 + 2 + 44 + 3 + 1 + 1 + 7 + 6 + 4 + 3 + 4 + 4 + 20;
        Assert.Equal(expected, IsaTable.Entries.Count);
        Assert.Equal(IsaTable.Entries.Count, IsaTable.Entries.Select(e => (e.OpCode, e.Selector, e.SelectorValue)).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(EntryIndexes))]
    public void EncodeDecodeRoundTrips(int index)
    {
        var insn = Sample(IsaTable.Entries[index]);
        var bytes = InstructionCodec.Encode([insn]);
        Assert.Equal(insn.RawSize * 8, bytes.Length);
        Assert.Equal(insn.OpCode.Value, bytes[0]);
        Assert.Equal([insn], InstructionCodec.Decode(bytes));
    }

    [Theory]
    [MemberData(nameof(EntryIndexes))]
    public void SampleValidatesAndFindsItsEntry(int index)
    {
        var entry = IsaTable.Entries[index];
        var insn = Sample(entry);
        Assert.Same(entry, IsaTable.Find(insn));
        Assert.Same(entry, InstructionValidator.ValidateInstruction(insn, 0));
    }

    [Theory]
    [MemberData(nameof(EntryIndexes))]
    public void EveryUnusedFieldMustBeZero(int index)
    {
        var entry = IsaTable.Entries[index];
        var insn = Sample(entry);
        var variants = new List<(string Field, Instruction Insn)>();
        if ((entry.Unused & UnusedFields.Dst) != 0) variants.Add(("dst", insn with { Dst = Register.R3 }));
        if ((entry.Unused & UnusedFields.Src) != 0) variants.Add(("src", insn with { Src = Register.R3 }));
        if ((entry.Unused & UnusedFields.Offset) != 0) variants.Add(("offset", insn with { Offset = 7 }));
        if ((entry.Unused & UnusedFields.Immediate) != 0) variants.Add(("imm", insn with { Constant = 7 }));
        foreach (var (field, bad) in variants)
        {
            var e = Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(bad, 5));
            Assert.Contains($"the {field} field must be zero", e.Message);
            Assert.Equal(5, e.RawIndex);
        }
    }

    [Theory]
    [MemberData(nameof(EntryIndexes))]
    public void RegistersAboveTenAndWritesToR10AreRefused(int index)
    {
        var entry = IsaTable.Entries[index];
        var insn = Sample(entry);
        if (entry.UsesDst)
            Assert.Contains("invalid dst register r11", Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(insn with { Dst = (Register)11 }, 0)).Message);
        if (entry.UsesSrcRegister)
            Assert.Contains("invalid src register r15", Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(insn with { Src = (Register)15 }, 0)).Message);
        if (entry.WritesDst)
            Assert.Contains("writes r10", Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(insn with { Dst = Register.R10 }, 0)).Message);
        else if (entry.UsesDst)
            InstructionValidator.ValidateInstruction(insn with { Dst = Register.R10 }, 0); // stores through r10 are fine
    }

    [Theory]
    [MemberData(nameof(EntryIndexes))]
    public void ConformanceSyntaxReassembles(int index)
    {
        var insn = Sample(IsaTable.Entries[index]);
        string text = Disassembler.Format(insn, AsmSyntax.Conformance);
        Assert.Equal([insn], Assembler.Assemble(text));
    }

    [Theory]
    [MemberData(nameof(EntryIndexes))]
    public void LlvmSyntaxIsNeverTheInvalidMarker(int index)
    {
        var text = Disassembler.Format(Sample(IsaTable.Entries[index]));
        Assert.DoesNotContain("invalid", text);
        Assert.DoesNotContain("%r", text);
    }

    [Fact]
    public void IsaVersionLimitIsEnforced()
    {
        var sdiv = Insn.SDiv(Register.R0, 2);
        var e = Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(sdiv, 3, IsaVersion.V3));
        Assert.Contains("sdiv needs ISA v4", e.Message);
        InstructionValidator.ValidateInstruction(Insn.JumpIf(JumpOperation.Jlt, Register.R1, 2, 0), 0, IsaVersion.V2);
        Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(Insn.JumpIf(JumpOperation.Jlt, Register.R1, 2, 0), 0, IsaVersion.V1));
        Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(Insn.JumpIf32(JumpOperation.Jeq, Register.R1, 2, 0), 0, IsaVersion.V2));
    }

    public static TheoryData<int> UnknownOpCodes()
    {
        var data = new TheoryData<int>();
        for (int op = 0; op < 256; op++)
        {
            if (!IsaTable.IsKnownOpCode((byte)op))
                data.Add(op);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(UnknownOpCodes))]
    public void UnknownOpCodesAreRefusedAndPrintedAsInvalid(int op)
    {
        var insn = new Instruction(new OpCode((byte)op), 0, 0, 0, 0);
        var e = Assert.Throws<InstructionException>(() => InstructionValidator.Validate([insn, Insn.Exit()]));
        Assert.Equal($"instruction 0: unknown opcode 0x{op:x2}", e.Message);
        Assert.StartsWith("<invalid opcode", Disassembler.Format(insn));
    }

    [Fact]
    public void KnownAndUnknownOpCodeCountsAddUp()
    {
        int known = Enumerable.Range(0, 256).Count(op => IsaTable.IsKnownOpCode((byte)op));
        Assert.Equal(IsaTable.Entries.Select(e => e.OpCode).Distinct().Count(), known);
        // Spot checks of opcodes that must not exist: neg with X, END on ALU64|X, ja/call/exit in JMP32, atomics on B/H.
        foreach (byte op in new byte[] { 0x8c, 0x8f, 0xdf, 0x86, 0x96, 0x8e, 0xd3, 0xcb, 0x99, 0x38, 0x58, 0xe5, 0xf5 })
            Assert.False(IsaTable.IsKnownOpCode(op), $"0x{op:x2}");
    }

    [Theory]
    [InlineData(0x3f, 2, 0, "does not allow offset 2 (allowed: 0, 1)")]
    [InlineData(0xbc, 32, 0, "does not allow offset 32 (allowed: 0, 8, 16)")]
    [InlineData(0xd4, 0, 8, "does not allow imm 8 (allowed: 16, 32, 64)")]
    [InlineData(0xdb, 0, 0x02, "unknown atomic operation 0x2")]
    public void SelectorValuesOutsideTheTableAreRefused(int op, short offset, int imm, string message)
    {
        var insn = new Instruction(new OpCode((byte)op), Register.R1, Register.R2, offset, imm);
        Assert.Contains(message, Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(insn, 0)).Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void LddwHasEverySrcForm(int src)
    {
        var insn = new Instruction(new OpCode(0x18), Register.R1, (Register)src, 0, 0x1_0000_0000L * (src == 4 ? 0 : 7) + (src == 4 ? 1 : 3));
        var entry = IsaTable.Find(insn);
        Assert.NotNull(entry);
        Assert.Equal(src, entry.SelectorValue);
        // lddw func points at code: it must land on an instruction.
        InstructionValidator.Validate([insn, Insn.Exit(), Insn.Exit()]);
        Assert.Equal([insn], Assembler.Assemble(Disassembler.Format(insn, AsmSyntax.Conformance)));
        Assert.Contains("does not allow src 7", Assert.Throws<InstructionException>(() => InstructionValidator.ValidateInstruction(insn with { Src = (Register)7 }, 0)).Message);
    }
}
