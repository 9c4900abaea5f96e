namespace SharpBpf.Asm;

/// <summary>
/// Checks that a program is well formed by the rules of <see cref="IsaTable"/>: known opcodes, valid selector
/// values (offsets/immediates/src forms), unused fields zero, registers r0-r10 with r10 never written, jump and
/// call targets inside the program and never into the middle of an lddw, and a last instruction that does not
/// fall through (exit or an unconditional jump). It does not track values; that is the verifier's job.
/// </summary>
public static class InstructionValidator
{
    /// <summary>Validates raw program bytes, including the reserved fields of each lddw's second slot.</summary>
    public static List<Instruction> ValidateBytes(ReadOnlySpan<byte> bytes, IsaVersion version = IsaVersion.V4)
    {
        var instructions = InstructionCodec.Decode(bytes);
        int slot = 0;
        foreach (var insn in instructions)
        {
            if (insn.IsLoadImmediate64)
            {
                var second = RawInstruction.Read(bytes[((slot + 1) * RawInstruction.Size)..]);
                if (second.OpCode != 0 || second.Registers != 0 || second.Offset != 0)
                    throw new InstructionException($"the second slot of lddw must have opcode, registers and offset zero (found {second})", slot + 1);
            }
            slot += insn.RawSize;
        }
        Validate(instructions, version);
        return instructions;
    }

    /// <summary>Validates a program. Throws <see cref="InstructionException"/> naming the raw index of the first problem.</summary>
    public static void Validate(IReadOnlyList<Instruction> instructions, IsaVersion version = IsaVersion.V4)
    {
        ArgumentNullException.ThrowIfNull(instructions);
        if (instructions.Count == 0)
            throw new InstructionException("the program is empty", 0);

        // Raw slot of every instruction start; the second slot of an lddw is not a valid target.
        int rawLength = InstructionCodec.RawLength(instructions);
        var isStart = new bool[rawLength];
        int slot = 0;
        foreach (var insn in instructions)
        {
            isStart[slot] = true;
            slot += insn.RawSize;
        }

        slot = 0;
        IsaEntry? last = null;
        foreach (var insn in instructions)
        {
            var entry = ValidateInstruction(insn, slot, version);
            if (insn.Reference is null && JumpDelta(entry, insn) is long delta)
            {
                long target = slot + 1 + delta;
                if (target < 0 || target >= rawLength)
                    throw new InstructionException($"{entry.Mnemonic}: target {target} (offset {delta:+0;-0}) is outside the program (0-{rawLength - 1})", slot);
                if (!isStart[target])
                    throw new InstructionException($"{entry.Mnemonic}: target {target} (offset {delta:+0;-0}) is the second slot of an lddw", slot);
            }
            last = entry;
            slot += insn.RawSize;
        }

        if (last!.Form is not (OperandForm.None or OperandForm.Target or OperandForm.TargetImm))
            throw new InstructionException($"the program must end with exit or an unconditional jump, not {last.Mnemonic}", rawLength - instructions[^1].RawSize);
    }

    /// <summary>The relative slot offset an instruction transfers control (or, for lddw func, points) to, or null.</summary>
    public static long? JumpDelta(IsaEntry entry, in Instruction insn) => entry.Form switch
    {
        OperandForm.Target or OperandForm.DstImmTarget or OperandForm.DstSrcTarget => insn.Offset,
        OperandForm.TargetImm or OperandForm.LocalCall => insn.Immediate,
        OperandForm.DstImm64 when entry.SelectorValue == (int)LoadImmediateSource.Function => insn.Immediate,
        _ => null,
    };

    /// <summary>Checks one instruction's fields (not its jump target) and returns its table entry.</summary>
    public static IsaEntry ValidateInstruction(in Instruction insn, int rawIndex, IsaVersion version = IsaVersion.V4)
    {
        var entry = IsaTable.Find(insn);
        if (entry is null)
            throw new InstructionException(DescribeUnknown(insn), rawIndex);
        if (entry.MinVersion > version)
            throw new InstructionException($"{entry.Mnemonic} needs ISA v{(int)entry.MinVersion} (the program is limited to v{(int)version})", rawIndex);

        var unused = entry.Unused;
        if ((unused & UnusedFields.Dst) != 0 && insn.Dst != 0)
            throw new InstructionException($"{entry.Mnemonic}: the dst field must be zero (found {(byte)insn.Dst})", rawIndex);
        if ((unused & UnusedFields.Src) != 0 && insn.Src != 0)
            throw new InstructionException($"{entry.Mnemonic}: the src field must be zero (found {(byte)insn.Src})", rawIndex);
        if ((unused & UnusedFields.Offset) != 0 && insn.Offset != 0)
            throw new InstructionException($"{entry.Mnemonic}: the offset field must be zero (found {insn.Offset})", rawIndex);
        if ((unused & UnusedFields.Immediate) != 0 && insn.Immediate != 0)
            throw new InstructionException($"{entry.Mnemonic}: the imm field must be zero (found {insn.Immediate})", rawIndex);

        if (entry.UsesDst && (byte)insn.Dst > 10)
            throw new InstructionException($"{entry.Mnemonic}: invalid dst register r{(byte)insn.Dst} (registers are r0-r10)", rawIndex);
        if (entry.UsesSrcRegister && (byte)insn.Src > 10)
            throw new InstructionException($"{entry.Mnemonic}: invalid src register r{(byte)insn.Src} (registers are r0-r10)", rawIndex);
        if (entry.WritesDst && insn.Dst == Register.R10)
            throw new InstructionException($"{entry.Mnemonic}: writes r10, the read-only frame pointer", rawIndex);
        if (entry.WritesSrc && insn.Src == Register.R10)
            throw new InstructionException($"{entry.Mnemonic}: writes r10 (its src), the read-only frame pointer", rawIndex);
        return entry;
    }

    private static string DescribeUnknown(in Instruction insn)
    {
        var entries = IsaTable.ForOpCode(insn.OpCode.Value);
        if (entries.Length == 0)
            return $"unknown opcode {insn.OpCode}";
        var first = entries[0];
        string names = string.Join("/", entries.ToArray().Select(e => e.Mnemonic).Distinct());
        string allowed = string.Join(", ", entries.ToArray().Select(e => e.SelectorValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return first.Selector switch
        {
            SelectorField.Offset => $"opcode {insn.OpCode} ({names}) does not allow offset {insn.Offset} (allowed: {allowed})",
            SelectorField.Immediate when (first.OpCode & 0xe7) == 0xc3 =>
                $"opcode {insn.OpCode} (atomic): unknown atomic operation 0x{insn.Immediate:x} (allowed: {string.Join(", ", entries.ToArray().Select(e => $"0x{e.SelectorValue:x}"))})",
            SelectorField.Immediate => $"opcode {insn.OpCode} ({names}) does not allow imm {insn.Immediate} (allowed: {allowed})",
            SelectorField.Src => $"opcode {insn.OpCode} ({names}) does not allow src {(byte)insn.Src} (allowed: {allowed})",
            _ => $"invalid instruction with opcode {insn.OpCode}",
        };
    }
}
