using SharpBpf.Maps;
using SharpBpf.Objects;

namespace SharpBpf.Vm;

/// <summary>How the managed VM loads and runs programs.</summary>
public sealed record VmOptions
{
    /// <summary>
    /// Check every load, store and atomic against the regions the program may touch (the default). Turn off only for
    /// programs a verifier has proved safe: unchecked programs read and write native memory directly.
    /// </summary>
    public bool CheckMemory { get; init; } = true;

    /// <summary>
    /// Verify every program at load with the managed verifier (<see cref="Verifier.BpfVerifier"/>), as the kernel
    /// would: a refused program throws <see cref="Verifier.VerifierException"/>. An accepted XDP program then runs
    /// without per-access checks (the JIT compiles each access the verifier proved in bounds to a plain load or
    /// store); programs of other types are verified but still run checked, as the VM has no context for them.
    /// </summary>
    public bool Verify { get; init; }

    /// <summary>
    /// How many instructions one run may execute before it traps with <see cref="TrapKind.BudgetExhausted"/>.
    /// Counted at backward jumps by the length of the loop body, so straight-line code costs nothing to count;
    /// bpf_loop callbacks count one per iteration as well. The kernel's own limit for bpf_loop is 8M iterations.
    /// </summary>
    public long InstructionBudget { get; init; } = 1L << 26;

    /// <summary>Deepest bpf-to-bpf call nesting, counting the entry function (the kernel's MAX_CALL_FRAMES is 8).</summary>
    public int MaxCallDepth { get; init; } = 8;

    /// <summary>Tail calls allowed in one run (the kernel's MAX_TAIL_CALL_CNT is 33).</summary>
    public int MaxTailCalls { get; init; } = 33;

    /// <summary>
    /// Refuse programs that may read a register before writing it (the kernel's verifier does). The check is
    /// path-insensitive, so it is off by default for object files and on for conformance runs.
    /// </summary>
    public bool RequireInitializedRegisters { get; init; }

    /// <summary>
    /// For the jit engine: load without waiting for the compile. A thread-pool thread compiles the program while runs
    /// go through the interpreter; once the compiled code is there, the next run uses it. Results do not change (the
    /// engines agree instruction for instruction); the first run is ready as soon as the program is decoded.
    /// </summary>
    public bool CompileInBackground { get; init; }

    /// <summary>
    /// For the jit engine: which code programs are compiled to. <see cref="JitTiering.Tiered"/> (the default) loads
    /// with quick code and swaps in optimised code compiled on a thread-pool thread, as .NET's tiered compilation does.
    /// </summary>
    public JitTiering JitTiering { get; init; } = JitTiering.Tiered;

    /// <summary>Creates the managed map for each map spec of a collection. Null: the managed maps' own factory.</summary>
    public Func<MapSpec, ManagedMap>? CreateMap { get; init; }

    /// <summary>
    /// The interfaces, routes and neighbours bpf_fib_lookup and bpf_check_mtu see. Null: a fresh network namespace
    /// (<see cref="SharpBpf.Helpers.RoutingTable.Unconfigured"/>): only the loopback (ifindex 1, MTU 65536), forwarding
    /// off, so bpf_fib_lookup answers BPF_FIB_LKUP_RET_FWD_DISABLED for it and -ENODEV for other interfaces.
    /// </summary>
    public SharpBpf.Helpers.RoutingTable? Routes { get; init; }

    /// <summary>The engine that runs the programs.</summary>
    public VmEngine Engine { get; init; } = VmEngine.Interpreter;

    public static VmOptions Default { get; } = new();
}

/// <summary>
/// Which code the jit engine compiles a program to. Both tiers run the same semantics, instruction for instruction;
/// they differ in compile time and speed.
/// </summary>
public enum JitTiering
{
    /// <summary>
    /// Baseline code at load (see <see cref="Baseline"/>), then the optimised code compiled on a thread-pool thread;
    /// each run starts with the best code compiled by then.
    /// </summary>
    Tiered,
    /// <summary>Optimised code only, compiled at load (RyuJIT's full optimisation).</summary>
    Optimized,
    /// <summary>Quick code only: IL compiled by RyuJIT without optimisation (MinOpts), a few times cheaper to compile
    /// than the optimised code and about half its speed.</summary>
    Quick,
    /// <summary>
    /// Baseline code only: x86-64 machine code written by SharpBpf's own one-pass code generator, as the kernel's JIT
    /// writes it, with no IL and no RyuJIT (tens of microseconds for a thousand instructions). It runs on x86-64
    /// Linux for every program but unverified ones that mix tail calls with bpf-to-bpf calls; those, and every
    /// program on other platforms, get quick code. Under NativeAOT, where no IL can be compiled, it is what
    /// every tiering gives (and the interpreter runs what it does not handle).
    /// </summary>
    Baseline,
}

/// <summary>
/// Where a program runs. Every consumer (test-run, pcap runs, conformance) picks an engine through this one point;
/// the JIT and the kernel backend plug in here.
/// </summary>
public enum VmEngine
{
    /// <summary>The reference interpreter of the managed VM.</summary>
    Interpreter,
    /// <summary>The IL JIT of the managed VM.</summary>
    Jit,
    /// <summary>The Linux kernel through bpf(2) (BPF_PROG_TEST_RUN), in SharpBpf.Linux.</summary>
    Kernel,
}

/// <summary>Names of engines as the CLI and JSON output spell them.</summary>
public static class VmEngineNames
{
    public static string ToName(this VmEngine engine) => engine switch
    {
        VmEngine.Interpreter => "interpreter",
        VmEngine.Jit => "jit",
        VmEngine.Kernel => "kernel",
        _ => engine.ToString().ToLowerInvariant(),
    };

    public static bool TryParse(string? text, out VmEngine engine)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "interpreter": engine = VmEngine.Interpreter; return true;
            case "jit": engine = VmEngine.Jit; return true;
            case "kernel": engine = VmEngine.Kernel; return true;
            default: engine = default; return false;
        }
    }
}
