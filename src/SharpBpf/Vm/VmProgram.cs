using System.Collections.Concurrent;
using System.Diagnostics;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Xdp;

namespace SharpBpf.Vm;

/// <summary>
/// A program loaded into the managed VM: validated, decoded into pinned memory, references resolved to native
/// addresses, helpers bound. Runs on any number of threads, each with its own <see cref="VmExecution"/>.
/// </summary>
public sealed unsafe class VmProgram : ITestRunnable
{
    private static readonly ConcurrentDictionary<uint, WeakReference<VmProgram>> s_byId = new();
    private static int s_lastId;

    private readonly DecodedInstruction[] _code;
    private readonly bool[] _isFunctionEntry;
    private readonly SourceLine[] _lines;

    internal VmProgram(string name, ProgramType type, IReadOnlyList<Instruction> instructions, IReadOnlyList<SourceLine>? lines,
        VmOptions options, HelperTable helpers, VmCollection? collection, Decoder.ReferenceResolver? resolve,
        ProgramSpec? spec = null, IReadOnlyList<MapSpec>? maps = null)
    {
        Name = name;
        Type = type;
        Helpers = helpers;
        Collection = collection;
        CheckMemory = options.CheckMemory;
        if (options.Verify)
        {
            spec ??= new ProgramSpec { Name = name, SectionName = "", Type = type, Instructions = [.. instructions], Lines = lines is null ? [] : [.. lines] };
            var verdict = Verifier.BpfVerifier.Verify(spec, new Verifier.VerifierOptions { Maps = maps ?? [] });
            verdict.ThrowIfRefused();
            // The proofs hold for the XDP context the VM builds; other program types keep their checks.
            if (type == ProgramType.Xdp)
            {
                AccessFacts = verdict.AccessFacts;
                Reached = verdict.Reached;
                CheckMemory = false;
            }
        }
        _loadOptions = options;
        Engine = options.Engine;
        ushort entry = helpers == HelperTable.Conformance ? (ushort)0b110 : (ushort)0b10;
        var decoded = Decoder.Decode(name, instructions, helpers, resolve, entry, options.RequireInitializedRegisters);
        // Pinned so the engines hold raw pointers and a function's address is a real, stable address.
        _code = GC.AllocateArray<DecodedInstruction>(decoded.Code.Length, pinned: true);
        decoded.Code.CopyTo(_code, 0);
        fixed (DecodedInstruction* p = _code)
            CodePointer = p;
        foreach (int i in decoded.FunctionLoads)
            _code[i].Imm = (long)(CodePointer + _code[i].Offset);
        _isFunctionEntry = new bool[_code.Length];
        foreach (int i in decoded.FunctionEntries)
            _isFunctionEntry[i] = true;
        _lines = lines is null ? [] : [.. lines.OrderBy(l => l.InstructionIndex)];
        InstructionCount = instructions.Count;
        Id = (uint)Interlocked.Increment(ref s_lastId);
        s_byId[Id] = new WeakReference<VmProgram>(this);
        if (Engine == VmEngine.Jit)
        {
            if (options.CompileInBackground)
                JitCompilation = Jit.JitEngine.CompileInBackground(this);
            else
                JitCode = Jit.JitEngine.CompileAtLoad(this);
            JitOptimization = Jit.JitEngine.OptimizeInBackground(this, JitCompilation);
        }
    }

    /// <summary>Loads a program from instructions alone (no maps): raw runs, conformance, tests.</summary>
    public static VmProgram Create(string name, IReadOnlyList<Instruction> instructions, ProgramType type = ProgramType.Xdp,
        VmOptions? options = null, IReadOnlyList<SourceLine>? lines = null) =>
        new(name, type, instructions, lines, options ?? VmOptions.Default, HelperTable.For(type), null, null);

    /// <summary>Loads a program with an explicit helper table (e.g. <see cref="HelperTable.Conformance"/>).</summary>
    public static VmProgram Create(string name, IReadOnlyList<Instruction> instructions, HelperTable helpers, VmOptions? options = null) =>
        new(name, ProgramType.Unspec, instructions, null, options ?? VmOptions.Default, helpers, null, null);

    /// <summary>The program with this <see cref="Id"/>, or null (what program arrays hold, where the kernel holds fds).</summary>
    public static VmProgram? FromId(uint id) =>
        s_byId.TryGetValue(id, out var weak) && weak.TryGetTarget(out var program) ? program : null;

    public string Name { get; }
    public ProgramType Type { get; }

    /// <summary>Process-wide id; write it into a program array map to make the program a tail-call target.</summary>
    public uint Id { get; }

    /// <summary>The collection whose maps the program uses, or null.</summary>
    public VmCollection? Collection { get; }

    public HelperTable Helpers { get; }

    /// <summary>True unless the program was loaded as verified: every access is checked.</summary>
    public bool CheckMemory { get; }

    /// <summary>True when the verifier accepted the program at load and it runs without per-access checks
    /// (<see cref="VmOptions.Verify"/>); it must then run on an XDP context (<see cref="RunXdp"/>, <see cref="TestRun"/>).</summary>
    public bool Verified => AccessFacts is not null;

    /// <summary>What the verifier proved about each memory access (logical index), when <see cref="Verified"/>.</summary>
    internal IReadOnlyDictionary<int, Verifier.AccessFact>? AccessFacts { get; }

    /// <summary>When <see cref="Verified"/>: per instruction, whether the verifier reached it (unreached ones are dead code).</summary>
    internal IReadOnlyList<bool>? Reached { get; }

    /// <summary>The engine that runs it.</summary>
    public VmEngine Engine { get; }

    /// <summary>Number of (logical) instructions.</summary>
    public int InstructionCount { get; }

    /// <summary>The decoded instructions (plus a final trap sentinel), for engines and tools.</summary>
    public ReadOnlySpan<DecodedInstruction> Code => _code;

    internal DecodedInstruction* CodePointer { get; }

    /// <summary>The JIT's compiled code (compiled at load for the jit engine, on first use as a tail-call target);
    /// replaced once by the optimised code when tiered.</summary>
    internal Jit.JitCode? JitCode;

    /// <summary>Serialises the compiles of this program (the load's, the background ones, a tail call's).</summary>
    internal object JitLock { get; } = new();

    /// <summary>Set when the JIT cannot compile this program at all (only baseline code can run in this process, as
    /// under NativeAOT, and it does not handle the program): the jit engine interprets it.</summary>
    internal volatile bool NoJitCode;

    /// <summary>How the JIT engine compiles this program (<see cref="VmOptions.JitTiering"/>).</summary>
    public JitTiering Tiering => _loadOptions.JitTiering;

    /// <summary>The background compile (<see cref="VmOptions.CompileInBackground"/>), or null.</summary>
    internal Task? JitCompilation { get; }

    /// <summary>Ticks of the first compile (0: none yet), set by the JIT under <see cref="JitLock"/>.</summary>
    internal long FirstCompileTicks;

    /// <summary>
    /// Time the JIT took to emit and compile the code this program first runs with (the quick code when tiered), or
    /// null when it has not been compiled.
    /// </summary>
    public TimeSpan? JitCompileTime => Volatile.Read(ref FirstCompileTicks) is > 0 and var ticks ? TimeSpan.FromTicks(ticks) : null;

    /// <summary>
    /// Tiered programs on the jit engine: completes when the optimised code is compiled and in use (runs started
    /// after that use it). Null when there is no optimised compile to wait for.
    /// </summary>
    public Task? JitOptimization { get; }

    /// <summary>Time the optimised compile took, once done; null before that and for quick-only programs.</summary>
    public TimeSpan? JitOptimizedCompileTime => JitCode is { Tier: Jit.JitTier.Optimized } code ? code.CompileTime : null;

    /// <summary>
    /// The code the jit engine runs this program with now: <c>"baseline"</c>, <c>"quick"</c> or <c>"optimized"</c>
    /// (for tools that show it); null before it is compiled and on other engines. A tiered program says
    /// <c>"baseline"</c> (or <c>"quick"</c>) until its optimised code is swapped in.
    /// </summary>
    public string? JitTierName => Volatile.Read(ref JitCode)?.Tier switch
    {
        Jit.JitTier.Baseline => "baseline",
        Jit.JitTier.Quick => "quick",
        Jit.JitTier.Optimized => "optimized",
        _ => null,
    };
    internal nint* HelperFunctions => Helpers.Functions;

    /// <summary>The index of the function whose address <paramref name="address"/> is, or -1.</summary>
    internal int FunctionIndexOf(ulong address)
    {
        ulong offset = address - (ulong)CodePointer;
        if (offset >= (ulong)InstructionCount * (ulong)sizeof(DecodedInstruction) || offset % (ulong)sizeof(DecodedInstruction) != 0)
            return -1;
        int index = (int)(offset / (ulong)sizeof(DecodedInstruction));
        return _isFunctionEntry[index] ? index : -1;
    }

    /// <summary>The source line that covers instruction <paramref name="index"/>, when line info was given.</summary>
    public SourceLine? SourceLineAt(int index)
    {
        SourceLine? best = null;
        foreach (var line in _lines)
        {
            if (line.InstructionIndex > index)
                break;
            best = line;
        }
        return best;
    }

    // ---- running -------------------------------------------------------------------------------------------------

    /// <summary>Runs with r1 and r2 set (r1 is usually the context). Traps throw <see cref="VmTrapException"/>.</summary>
    public ulong Run(VmExecution execution, ulong r1 = 0, ulong r2 = 0)
    {
        ArgumentNullException.ThrowIfNull(execution);
        ThrowIfVerified();
        execution.BeginRun(this, null);
        return RunCore(execution, r1, r2);
    }

    /// <summary>Runs over a block of memory as bpf_conformance does: r1 = its address (0 when empty), r2 = its length.
    /// The program may read and write the block. Traps throw <see cref="VmTrapException"/>.</summary>
    public ulong Run(VmExecution execution, Span<byte> memory)
    {
        ArgumentNullException.ThrowIfNull(execution);
        ThrowIfVerified();
        fixed (byte* p = memory)
        {
            ulong address = memory.IsEmpty ? 0 : (ulong)p;
            execution.BeginRun(this, null, address, (ulong)memory.Length);
            return RunCore(execution, address, (ulong)memory.Length);
        }
    }

    // A verified program's accesses are unchecked: its proofs hold only for the XDP context, never for a raw r1.
    private void ThrowIfVerified()
    {
        if (Verified)
            throw new InvalidOperationException($"program '{Name}' was loaded verified (unchecked accesses): run it on an XDP frame (RunXdp, TestRun), not on raw registers or memory");
    }

    /// <summary>Runs an XDP program on a frame. A trap gives <see cref="XdpAction.Aborted"/> and is returned in
    /// <paramref name="trap"/>; the frame keeps what the program wrote before it.</summary>
    public XdpAction RunXdp(VmExecution execution, XdpContext context, out VmTrapException? trap)
    {
        ArgumentNullException.ThrowIfNull(execution);
        ArgumentNullException.ThrowIfNull(context);
        execution.BeginRun(this, context);
        trap = null;
        try
        {
            return (XdpAction)(uint)RunCore(execution, (ulong)context.MetadataBlock, 0);
        }
        catch (VmTrapException t)
        {
            trap = t;
            return XdpAction.Aborted;
        }
    }

    /// <summary>The engine selection point: the JIT plugs in here.</summary>
    private ulong RunCore(VmExecution execution, ulong r1, ulong r2) => Engine switch
    {
        VmEngine.Interpreter => Interpreter.Run(execution, this, r1, r2),
        VmEngine.Jit => Jit.JitEngine.Run(execution, this, r1, r2),
        _ => throw new BpfNotSupportedException($"the {Engine.ToName()} engine in the managed VM", detail: "it is not built yet; use the interpreter"),
    };

    /// <summary>The routing table bpf_fib_lookup and bpf_check_mtu see (<see cref="VmOptions.Routes"/> at load).</summary>
    public SharpBpf.Helpers.RoutingTable? Routes => _loadOptions.Routes;

    /// <summary>The options the program was loaded with: a test run's execution honours them (budget, call depth).</summary>
    private readonly VmOptions _loadOptions;

    /// <summary>
    /// The test-run contract: runs <see cref="TestRunOptions.Repeat"/> times on one frame (writes accumulate, as in
    /// the kernel) and reports the last return value (low 32 bits, as the kernel does), the frame from data_meta to
    /// data_end, and the mean time per run. A trap reports XDP_ABORTED.
    /// </summary>
    public TestRunResult TestRun(TestRunOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Repeat < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "repeat must be at least 1");
        using var execution = new VmExecution(_loadOptions);
        using var context = new XdpContext();
        int metaLength = 0;
        uint ingressIn = 0;
        // As in the kernel's test-run: the frame arrives on the loopback device's queue 0 unless the context names
        // another interface.
        context.IngressIfindex = XdpContext.LoopbackIfindex;
        if (options.Context is { } ctxIn)
        {
            var md = ctxIn.Span;
            if (md.Length < XdpContext.MetadataSize)
                throw new BpfException($"program '{Name}': test-run context must be a {XdpContext.MetadataSize}-byte xdp_md, got {md.Length} bytes");
            uint data = BitConverter.ToUInt32(md), dataEnd = BitConverter.ToUInt32(md[4..]), dataMeta = BitConverter.ToUInt32(md[8..]);
            if (dataMeta != 0 || (dataEnd != 0 && dataEnd != options.Data.Length) || data > options.Data.Length)
                throw new BpfException($"program '{Name}': test-run context: data_meta must be 0, data at most and data_end equal to the data length");
            if (BitConverter.ToUInt32(md[20..]) != 0)
                throw new BpfException($"program '{Name}': test-run context: egress_ifindex must be 0");
            metaLength = (int)data;
            ingressIn = BitConverter.ToUInt32(md[12..]);
            if (ingressIn != 0)
                context.IngressIfindex = ingressIn;
            context.RxQueueIndex = BitConverter.ToUInt32(md[16..]);
        }
        context.SetPacket(options.Data.Span, metaLength);
        XdpAction action = XdpAction.Aborted;
        VmTrapException? trap = null;
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < options.Repeat; i++)
            action = RunXdp(execution, context, out trap);
        watch.Stop();
        byte[]? ctxOut = null;
        if (options.Context is not null)
        {
            ctxOut = new byte[XdpContext.MetadataSize];
            BitConverter.TryWriteBytes(ctxOut.AsSpan(0), (uint)(context.Data - context.DataMeta));
            BitConverter.TryWriteBytes(ctxOut.AsSpan(4), (uint)(context.DataEnd - context.DataMeta));
            BitConverter.TryWriteBytes(ctxOut.AsSpan(12), ingressIn); // the kernel gives back what it was given
            BitConverter.TryWriteBytes(ctxOut.AsSpan(16), context.RxQueueIndex);
        }
        return new TestRunResult
        {
            ReturnValue = (uint)action,
            DataOut = context.MetadataAndPacket.ToArray(),
            ContextOut = ctxOut,
            NanosecondsPerRun = watch.Elapsed.TotalNanoseconds / options.Repeat,
            Engine = Engine.ToName(),
            Program = Name,
            Trap = trap?.Message,
            Trace = execution.Trace.Count == 0 ? [] : [.. execution.Trace],
        };
    }
}
