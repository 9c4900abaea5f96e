using SharpBpf.Objects;

namespace SharpBpf.Vm;

/// <summary>Why a program was stopped at run time.</summary>
public enum TrapKind
{
    /// <summary>A load, store or atomic outside every region the program may touch (or a write to a read-only one).</summary>
    MemoryAccess,
    /// <summary>An atomic operation on an address that is not aligned to its size.</summary>
    MisalignedAtomic,
    /// <summary>The run executed more instructions than <see cref="VmOptions.InstructionBudget"/> allows.</summary>
    BudgetExhausted,
    /// <summary>A bpf-to-bpf call would nest deeper than <see cref="VmOptions.MaxCallDepth"/> frames.</summary>
    CallDepthExceeded,
    /// <summary>A call through a register (callx) or a helper argument named something that is not callable.</summary>
    BadCall,
    /// <summary>A helper refused its arguments in a way the kernel's verifier would have refused at load.</summary>
    BadHelperArgument,
    /// <summary>Execution ran past the last instruction.</summary>
    FellOffEnd,
    /// <summary>The JIT reached an instruction its verifier had proved unreachable (it compiles a trap there instead of
    /// the instruction, as the kernel removes dead code): the verifier's model and the run disagree.</summary>
    Unreachable,
}

/// <summary>
/// A program stopped by the VM: bad memory access, runaway loop, too deep recursion, bad call. Carries the program,
/// the instruction index (logical, lddw counted once) and the C source line when the object has line info.
/// The XDP runtime turns a trap into <see cref="Xdp.XdpAction.Aborted"/>.
/// </summary>
public sealed class VmTrapException : BpfException
{
    internal VmTrapException(TrapKind kind, string detail, string program, int instructionIndex, SourceLine? line)
        : base(Format(kind, detail, program, instructionIndex, line))
    {
        Kind = kind;
        Detail = detail;
        Program = program;
        InstructionIndex = instructionIndex;
        SourceLine = line;
    }

    public TrapKind Kind { get; }

    /// <summary>The reason alone, without the location.</summary>
    public string Detail { get; }

    /// <summary>The program that was running (after tail calls: the one that trapped).</summary>
    public string Program { get; }

    /// <summary>Logical instruction index (lddw counts once), as in <see cref="ProgramSpec.Instructions"/>.</summary>
    public int InstructionIndex { get; }

    /// <summary>The C source line covering the instruction, when the object had line info.</summary>
    public SourceLine? SourceLine { get; }

    private static string Format(TrapKind kind, string detail, string program, int index, SourceLine? line)
    {
        var where = $"program '{program}': instruction {index}";
        if (line is not null)
            where += $" ({line.FileName}:{line.Line}: {line.Text.Trim()})";
        return $"{where}: {KindText(kind)}: {detail}";
    }

    private static string KindText(TrapKind kind) => kind switch
    {
        TrapKind.MemoryAccess => "invalid memory access",
        TrapKind.MisalignedAtomic => "misaligned atomic access",
        TrapKind.BudgetExhausted => "instruction budget exhausted",
        TrapKind.CallDepthExceeded => "call depth exceeded",
        TrapKind.BadCall => "bad call",
        TrapKind.BadHelperArgument => "bad helper argument",
        TrapKind.FellOffEnd => "fell off the end of the program",
        TrapKind.Unreachable => "reached an instruction the verifier proved unreachable",
        _ => kind.ToString(),
    };
}

/// <summary>A program the VM refuses to load: invalid instruction, helper not allowed, unresolved reference.</summary>
public sealed class VmLoadException : BpfException
{
    public VmLoadException(string program, int instructionIndex, string message)
        : base(instructionIndex >= 0 ? $"program '{program}': instruction {instructionIndex}: {message}" : $"program '{program}': {message}")
    {
        Program = program;
        InstructionIndex = instructionIndex;
    }

    public string Program { get; }

    /// <summary>Logical instruction index of the refused instruction, or -1 when the refusal is about the whole program.</summary>
    public int InstructionIndex { get; }
}
