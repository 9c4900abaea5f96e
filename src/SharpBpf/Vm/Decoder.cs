using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Platform;

namespace SharpBpf.Vm;

/// <summary>
/// Validates a program's instructions the way the kernel's instruction checks do (reserved fields zero, known
/// opcodes, registers in range, r10 never written, jumps inside the program and onto instruction starts, the last
/// instruction an exit or a jump) and turns them into <see cref="DecodedInstruction"/>s. Refusals are
/// <see cref="VmLoadException"/>s naming the instruction.
/// </summary>
internal static class Decoder
{
    /// <summary>Resolves an lddw whose src is not a plain constant (map, map value): returns the 64-bit value.</summary>
    internal delegate long ReferenceResolver(int index, Instruction instruction);

    internal sealed class Result
    {
        public required DecodedInstruction[] Code { get; init; }
        /// <summary>Instruction indexes where functions start: 0, every local call target and callback.</summary>
        public required SortedSet<int> FunctionEntries { get; init; }
        /// <summary>Indexes of lddw instructions that load a function address (patched once the code is pinned).</summary>
        public required List<int> FunctionLoads { get; init; }
    }

    public static Result Decode(string program, IReadOnlyList<Instruction> instructions, HelperTable helpers,
        ReferenceResolver? resolve, ushort entryRegisters, bool requireInitializedRegisters)
    {
        if (!BitConverter.IsLittleEndian)
            throw new BpfNotSupportedException("the managed VM on a big-endian host");
        int n = instructions.Count;
        if (n == 0)
            throw new VmLoadException(program, -1, "the program has no instructions");

        // Raw slot of each logical instruction, and the logical index of each raw slot (-1 inside an lddw).
        var rawStart = new int[n + 1];
        int raw = 0;
        for (int i = 0; i < n; i++)
        {
            rawStart[i] = raw;
            raw += instructions[i].RawSize;
        }
        rawStart[n] = raw;
        var logicalAt = new int[raw + 1];
        Array.Fill(logicalAt, -1);
        for (int i = 0; i <= n; i++)
            logicalAt[rawStart[i]] = i;

        var code = new DecodedInstruction[n + 1];
        var entries = new SortedSet<int> { 0 };
        var functionLoads = new List<int>();
        for (int i = 0; i < n; i++)
        {
            var insn = instructions[i];
            code[i] = DecodeOne(program, i, insn, helpers, resolve, rawStart, logicalAt, n, entries, functionLoads);
        }
        code[n] = new DecodedInstruction { Op = VmOp.FellOff };

        byte last = code[n - 1].Op;
        if (last is not (VmOp.Exit or VmOp.Jump))
            throw new VmLoadException(program, n - 1, "the last instruction is not an exit or a jump");

        if (requireInitializedRegisters)
            RegisterInitialization.Check(program, code, n, entries, entryRegisters);
        return new Result { Code = code, FunctionEntries = entries, FunctionLoads = functionLoads };
    }

    private static DecodedInstruction DecodeOne(string program, int i, Instruction insn, HelperTable helpers,
        ReferenceResolver? resolve, int[] rawStart, int[] logicalAt, int n, SortedSet<int> entries, List<int> functionLoads)
    {
        var op = insn.OpCode;
        byte dst = (byte)insn.Dst, src = (byte)insn.Src;
        short off = insn.Offset;
        int imm = insn.Immediate;
        VmLoadException Refuse(string why) => new(program, i, $"{why} (opcode {op})");

        if (dst > 10)
            throw Refuse($"invalid destination register r{dst}");
        if (src > 10 && !(op.Value == 0x18))
            throw Refuse($"invalid source register r{src}");
        var d = new DecodedInstruction { Op = op.Value, Dst = dst, Src = src, Offset = off, Imm = imm };

        int JumpTarget(long relative)
        {
            // Relative to the slot after the instruction's first slot (for lddw of a function too, as the kernel reads it).
            long target = rawStart[i] + 1L + relative;
            if (target < 0 || target >= rawStart[n])
                throw Refuse($"jump to raw slot {target} outside the program");
            int logical = logicalAt[target];
            if (logical < 0)
                throw Refuse($"jump into the middle of an lddw (raw slot {target})");
            return logical;
        }

        switch (op.Class)
        {
            case InstructionClass.Alu:
            case InstructionClass.Alu64:
            {
                bool is64 = op.Class == InstructionClass.Alu64;
                bool reg = op.Source == OperandSource.Register;
                if (dst == 10)
                    throw Refuse("r10 is read-only");
                var aop = op.AluOperation;
                if (aop is AluOperation.End)
                {
                    if (src != 0 || off != 0)
                        throw Refuse("reserved fields of a byte swap must be zero");
                    if (imm is not (16 or 32 or 64))
                        throw Refuse($"byte swap width {imm} is not 16, 32 or 64");
                    if (is64 && reg)
                        throw Refuse("unknown opcode");
                    // ALU|END|K is to_le, ALU|END|X to_be, ALU64|END|K an unconditional bswap.
                    bool swap = is64 || reg != !BitConverter.IsLittleEndian;
                    d.Op = (swap, imm) switch
                    {
                        (true, 16) => VmOp.Swap16,
                        (true, 32) => VmOp.Swap32,
                        (true, _) => VmOp.Swap64,
                        (false, 16) => VmOp.Truncate16,
                        (false, 32) => VmOp.Truncate32,
                        _ => VmOp.Nop,
                    };
                    d.Imm = 0;
                    return d;
                }
                if (aop > AluOperation.End)
                    throw Refuse("unknown ALU operation");
                if (aop is AluOperation.Neg)
                {
                    if (reg || src != 0 || off != 0 || imm != 0)
                        throw Refuse("reserved fields of neg must be zero");
                    return d;
                }
                if (reg ? imm != 0 : src != 0)
                    throw Refuse(reg ? "the immediate of a register operation must be zero" : "the source register of an immediate operation must be zero");
                if (aop is AluOperation.Div or AluOperation.Mod)
                {
                    if (off == 1)
                    {
                        bool div = aop is AluOperation.Div;
                        d.Op = (div, is64, reg) switch
                        {
                            (true, false, false) => VmOp.SDiv32Imm,
                            (true, false, true) => VmOp.SDiv32Reg,
                            (true, true, false) => VmOp.SDiv64Imm,
                            (true, true, true) => VmOp.SDiv64Reg,
                            (false, false, false) => VmOp.SMod32Imm,
                            (false, false, true) => VmOp.SMod32Reg,
                            (false, true, false) => VmOp.SMod64Imm,
                            _ => VmOp.SMod64Reg,
                        };
                    }
                    else if (off != 0)
                        throw Refuse($"offset {off} of a division must be 0 or 1");
                    d.Offset = 0;
                    return d;
                }
                if (aop is AluOperation.Mov && off != 0)
                {
                    if (!reg)
                        throw Refuse("the offset of mov with an immediate must be zero");
                    d.Op = (is64, off) switch
                    {
                        (true, 8) => VmOp.MovSx64From8,
                        (true, 16) => VmOp.MovSx64From16,
                        (true, 32) => VmOp.MovSx64From32,
                        (false, 8) => VmOp.MovSx32From8,
                        (false, 16) => VmOp.MovSx32From16,
                        _ => throw Refuse(is64 ? $"movsx offset {off} is not 8, 16 or 32" : $"movsx offset {off} is not 8 or 16"),
                    };
                    d.Offset = 0;
                    return d;
                }
                if (off != 0)
                    throw Refuse("the offset of an ALU operation must be zero");
                return d;
            }

            case InstructionClass.Jmp:
            case InstructionClass.Jmp32:
            {
                bool is32 = op.Class == InstructionClass.Jmp32;
                bool reg = op.Source == OperandSource.Register;
                switch (op.JumpOperation)
                {
                    case JumpOperation.Ja:
                        if (reg || dst != 0 || src != 0)
                            throw Refuse("reserved fields of ja must be zero");
                        if (is32)
                        {
                            if (off != 0)
                                throw Refuse("the offset of gotol must be zero");
                            d.Offset = JumpTarget(imm);
                        }
                        else
                        {
                            if (imm != 0)
                                throw Refuse("the immediate of ja must be zero");
                            d.Offset = JumpTarget(off);
                        }
                        d.Op = VmOp.Jump;
                        d.Imm = 0;
                        return d;
                    case JumpOperation.Exit:
                        if (is32 || reg || dst != 0 || src != 0 || off != 0 || imm != 0)
                            throw Refuse("reserved fields of exit must be zero");
                        return d;
                    case JumpOperation.Call:
                        if (is32)
                            throw Refuse("unknown opcode");
                        if (reg)
                        {
                            // callx: the register (in dst, as LLVM and the kernel encode it) holds the target.
                            if (src != 0 || off != 0 || imm != 0)
                                throw Refuse("reserved fields of callx must be zero");
                            d.Op = VmOp.CallRegister;
                            return d;
                        }
                        if (dst != 0 || off != 0)
                            throw Refuse("reserved fields of call must be zero");
                        switch ((CallKind)src)
                        {
                            case CallKind.Helper:
                            {
                                if (!helpers.TryGet(imm, out var helper))
                                    throw Refuse(helpers.DescribeRefusal(imm));
                                d.Op = helper.Id == (int)HelperId.TailCall ? VmOp.TailCall : VmOp.CallHelper;
                                return d;
                            }
                            case CallKind.Local:
                                d.Op = VmOp.LocalCall;
                                d.Offset = JumpTarget(imm);
                                d.Src = 0;
                                entries.Add(d.Offset);
                                return d;
                            case CallKind.Kfunc:
                                throw Refuse($"kernel function calls (kfunc btf id {imm}) are not available in the managed VM");
                            default:
                                throw Refuse($"unknown call kind {src}");
                        }
                    default:
                        if (op.JumpOperation > JumpOperation.Jsle)
                            throw Refuse("unknown jump operation");
                        if (reg ? imm != 0 : src != 0)
                            throw Refuse(reg ? "the immediate of a register jump must be zero" : "the source register of an immediate jump must be zero");
                        d.Offset = JumpTarget(off);
                        return d;
                }
            }

            case InstructionClass.Ld:
            {
                if (op.Value != 0x18)
                    throw Refuse(op.Mode is AccessMode.Abs or AccessMode.Ind
                        ? "legacy packet access (ld abs/ind) is only for socket filters and is not supported"
                        : "unknown opcode");
                if (dst == 10)
                    throw Refuse("r10 is read-only");
                if (off != 0)
                    throw Refuse("the offset of lddw must be zero");
                d.Src = 0;
                d.Op = VmOp.LoadImm64;
                switch ((LoadImmediateSource)src)
                {
                    case LoadImmediateSource.Immediate:
                        d.Imm = insn.Constant;
                        return d;
                    case LoadImmediateSource.Function:
                    {
                        int target = JumpTarget(imm);
                        entries.Add(target);
                        functionLoads.Add(i);
                        d.Offset = target;
                        return d;
                    }
                    case LoadImmediateSource.MapFd:
                    case LoadImmediateSource.MapValue:
                    case LoadImmediateSource.MapIndex:
                    case LoadImmediateSource.MapIndexValue:
                        if (resolve is null)
                            throw Refuse($"lddw refers to a map{(insn.Reference is { } name ? $" '{name}'" : "")} but no maps are loaded here");
                        d.Imm = resolve(i, insn);
                        return d;
                    default:
                        throw Refuse($"lddw with source {src} ({(LoadImmediateSource)src}) is not supported in the managed VM");
                }
            }

            case InstructionClass.Ldx:
            {
                if (dst == 10)
                    throw Refuse("r10 is read-only");
                if (imm != 0)
                    throw Refuse("the immediate of a load must be zero");
                if (op.Mode is AccessMode.Mem)
                {
                    d.Size = (byte)op.SizeInBytes;
                    return d;
                }
                if (op.Mode is AccessMode.MemSx && op.Size != AccessSize.DoubleWord)
                {
                    d.Size = (byte)op.SizeInBytes;
                    return d;
                }
                throw Refuse("unknown load mode");
            }

            case InstructionClass.St:
                if (op.Mode is not AccessMode.Mem)
                    throw Refuse("unknown store mode");
                if (src != 0)
                    throw Refuse("the source register of a store immediate must be zero");
                d.Size = (byte)op.SizeInBytes;
                return d;

            default: // Stx
                if (op.Mode is AccessMode.Mem)
                {
                    if (imm != 0)
                        throw Refuse("the immediate of a store must be zero");
                    d.Size = (byte)op.SizeInBytes;
                    return d;
                }
                if (op.Mode is AccessMode.Atomic)
                {
                    if (op.Size is not (AccessSize.Word or AccessSize.DoubleWord))
                        throw Refuse("atomic operations are 32 or 64 bits wide");
                    if (!Enum.IsDefined((AtomicOperation)imm))
                        throw Refuse($"unknown atomic operation 0x{imm:x}");
                    d.Size = (byte)op.SizeInBytes;
                    return d;
                }
                throw Refuse("unknown store mode");
        }
    }
}
