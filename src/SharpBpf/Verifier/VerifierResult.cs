using SharpBpf.Objects;

namespace SharpBpf.Verifier;

/// <summary>Which memory region an instruction touches; flags, as one instruction may touch several on different paths.</summary>
[Flags]
public enum MemoryRegion
{
    None = 0,
    Context = 1,
    Stack = 2,
    Packet = 4,
    PacketMeta = 8,
    MapValue = 16,
    RingbufMemory = 32,
}

/// <summary>
/// What the verifier proved about one memory-access instruction, for the JIT and the VM: on every path, the access
/// stays inside the regions named. An accepted program has a fact for every load, store and atomic it can reach.
/// </summary>
public readonly record struct AccessFact(MemoryRegion Regions, bool ProvenInBounds);

/// <summary>Why the verifier refused a program: where, why, what the failing register held, and how to fix it.</summary>
public sealed record VerifierError
{
    /// <summary>The logical instruction index (lddw counts once).</summary>
    public required int InstructionIndex { get; init; }

    /// <summary>The 8-byte slot index, as the kernel's log numbers instructions.</summary>
    public required int RawIndex { get; init; }

    /// <summary>The instruction in assembly.</summary>
    public required string Instruction { get; init; }

    /// <summary>One sentence: what is wrong.</summary>
    public required string Message { get; init; }

    /// <summary>How to fix it, when we can tell; null otherwise.</summary>
    public string? Hint { get; init; }

    /// <summary>The register the rule failed on and what it held, e.g. "R2 = pkt(off=14,r=0)".</summary>
    public string? RegisterState { get; init; }

    /// <summary>The C source line of the instruction, when the object carries line info.</summary>
    public SourceLine? SourceLine { get; init; }

    /// <summary>The registers of the innermost frame at the failure.</summary>
    public string? State { get; init; }

    public override string ToString()
    {
        var text = $"instruction {InstructionIndex} ({Instruction}): {Message}";
        if (SourceLine is not null)
            text += $" [{SourceLine.FileName}:{SourceLine.Line}: {SourceLine.Text.Trim()}]";
        if (RegisterState is not null)
            text += $"; {RegisterState}";
        if (Hint is not null)
            text += $". Hint: {Hint}";
        return text;
    }
}

/// <summary>The verdict on one program, with the facts the JIT may rely on and the figures the kernel's log prints.</summary>
public sealed class VerifierResult
{
    public required string ProgramName { get; init; }

    public bool Accepted => Error is null;

    /// <summary>Why the program was refused; null when it was accepted.</summary>
    public VerifierError? Error { get; init; }

    /// <summary>Instructions processed over all paths (the kernel's "processed N insns").</summary>
    public required int ProcessedInstructions { get; init; }

    /// <summary>States kept for pruning (the kernel's "total_states").</summary>
    public required int TotalStates { get; init; }

    /// <summary>Largest stack depth of any frame in bytes.</summary>
    public required int StackDepth { get; init; }

    /// <summary>Time spent verifying.</summary>
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Per memory-access instruction (logical index): the regions it touches and whether proven in bounds.</summary>
    public required IReadOnlyDictionary<int, AccessFact> AccessFacts { get; init; }

    /// <summary>Accepted programs: per instruction (logical index), whether some verified path reached it. What no
    /// path reaches is dead code (the kernel removes it before its JIT runs; the VM's JIT compiles a trap for it).</summary>
    internal IReadOnlyList<bool>? Reached { get; init; }

    /// <summary>The state trace, when <see cref="VerifierOptions.Log"/> was set.</summary>
    public string? Log { get; init; }

    /// <summary>Throws <see cref="VerifierException"/> when the program was refused.</summary>
    public void ThrowIfRefused()
    {
        if (Error is not null)
            throw new VerifierException(ProgramName, Error);
    }
}

/// <summary>A program the verifier refused. The message says the program, instruction, source line and why.</summary>
public sealed class VerifierException : BpfException
{
    public VerifierException(string programName, VerifierError error)
        : base($"verify program '{programName}': {error}")
    {
        ProgramName = programName;
        Error = error;
    }

    public string ProgramName { get; }
    public VerifierError Error { get; }
}

/// <summary>How to verify.</summary>
public sealed record VerifierOptions
{
    /// <summary>
    /// Verify as the kernel does for a privileged loader (root, CAP_BPF + CAP_PERFMON), the default: reading
    /// uninitialised stack, returning or comparing pointers and bounded loops are allowed. When false, the rules for
    /// unprivileged loaders apply (no pointer leaks, no uninitialised stack reads).
    /// </summary>
    public bool Privileged { get; init; } = true;

    /// <summary>The collection's BTF, when there is one: it tells which functions are global (verified on their own
    /// with BTF-typed arguments, as the kernel does).</summary>
    internal SharpBpf.Btf.BtfSpec? Btf { get; init; }

    /// <summary>
    /// The BTF of the kernel the program is meant for: kfunc prototypes and the layout of the kernel structs a
    /// kfunc's pointer reaches (a program's CO-RE relocations are applied against it first, as the loader does). Null:
    /// the running kernel's (/sys/kernel/btf/vmlinux), read only when a program calls a kfunc or uses a __ksym, and
    /// when there is none such programs are declined as unmodelled.
    /// </summary>
    public SharpBpf.Btf.BtfSpec? KernelBtf { get; init; }

    /// <summary>Tests only: behave as on a machine without /sys/kernel/btf/vmlinux (offline, another OS).</summary>
    internal bool WithoutRunningKernelBtf { get; init; }

    /// <summary>The collection's externs (__ksym, __kconfig): what an lddw or a call by name refers to.</summary>
    internal IReadOnlyList<ExternSpec> Externs { get; init; } = [];

    /// <summary>Tests only: compare every scalar of a kept state by range, as without precision tracking (the
    /// verdict must not change, only the work).</summary>
    internal bool WithoutPrecision { get; init; }

    /// <summary>The kernel's limit on processed instructions (BPF_COMPLEXITY_LIMIT_INSNS).</summary>
    public int ComplexityLimit { get; init; } = 1_000_000;

    /// <summary>Record a full state trace in <see cref="VerifierResult.Log"/>.</summary>
    public bool Log { get; init; }

    /// <summary>Maps the program refers to by name, when not given by a collection.</summary>
    public IReadOnlyList<MapSpec> Maps { get; init; } = [];

    /// <summary>Expected attach type (e.g. BPF_XDP_DEVMAP), which widens the context for some program types.</summary>
    public uint? ExpectedAttachType { get; init; }
}
