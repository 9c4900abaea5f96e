using System.Diagnostics;
using System.Text;
using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier.Cfg;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>
/// The exploration engine: a depth-first walk over paths, one abstract state per path, with the kernel's pruning
/// (a state covered by a fully explored one at the same instruction stops the path) and its loop check (a state equal
/// to one still being explored at the same instruction is an infinite loop). The instruction semantics live in the
/// partial files: Engine.Transformer.cs (ALU, jumps), Engine.Memory.cs (loads, stores), Engine.Calls.cs (helpers,
/// functions, exit).
/// </summary>
internal sealed partial class Engine
{
    /// <summary>A state kept at a prune point. Branches counts the paths below it still being explored.</summary>
    private sealed class Checkpoint(VerifierState state, Checkpoint? parent, int hash, int pc)
    {
        public VerifierState State { get; } = state;
        public int Hash { get; } = hash;
        public int Pc { get; } = pc;
        public Checkpoint? Parent { get; } = parent;
        public int Branches { get; set; } = 1;

        /// <summary>A state with several frames keeps every scalar precise (its locations are not numbered).</summary>
        public bool MultiFrame { get; } = state.Frames.Count > 1;

        /// <summary>Registers (bit r) and stack slots (bit s: fp-512+8s) whose exact value some path below this
        /// checkpoint relied on: only these scalars must be covered by range when pruning against it.</summary>
        public ushort PreciseRegs { get; set; }

        /// <summary>Quick rejection: 4 bits per register r0-r9 of the innermost frame, the type of each register
        /// live here and initialised in this state (<see cref="TypeMask"/> selects them); a state whose types differ
        /// there cannot be covered.</summary>
        public ulong TypeBits { get; init; }
        public ulong TypeMask { get; init; }

        /// <summary>The same for pointers' fixed offsets (which must be equal to cover): 6 bits per register of the
        /// offset of each pointer register that <see cref="TypeMask"/> selects (<see cref="OffsetMask"/>).</summary>
        public ulong OffsetBits { get; init; }
        public ulong OffsetMask { get; init; }
        public ulong PreciseSlots { get; set; }
        public bool AllMarked { get; set; }

        public int Hits { get; set; }
        public int Misses { get; set; }
    }

    private sealed class PathItem(VerifierState state, int pc, Checkpoint? parent)
    {
        public VerifierState State { get; } = state;
        public int Pc { get; set; } = pc;
        public Checkpoint? Parent { get; set; } = parent;
    }

    /// <summary>Thrown inside the engine to stop at a refusal; turned into a <see cref="VerifierError"/>.</summary>
    private sealed class Refusal(string message, string? hint = null, Register? register = null) : Exception(message)
    {
        public string? Hint { get; } = hint;
        public Register? Register { get; } = register;
    }

    private const int MaxCompletedStatesPerInstruction = 64;

    private readonly ProgramSpec _program;
    private readonly PlatformTable _platform;
    private readonly VerifierOptions _options;
    private readonly Dictionary<string, MapSpec> _maps;
    private ProgramGraph _graph = null!;
    /// <summary>Per instruction: fully explored states (bounded, oldest evicted), used for pruning.</summary>
    private List<Checkpoint>[] _completed = [];

    /// <summary>Per instruction: states whose paths are still being explored, by hash, used for the loop check.</summary>
    private Dictionary<int, List<Checkpoint>>[] _inProgress = [];
    private ushort[] _liveIn = [];
    private ulong[] _stackLive = [];
    private readonly Stack<PathItem> _pending = new();
    private readonly Dictionary<int, AccessFact> _facts = [];
    /// <summary>Per instruction: reached on some verified path (the kernel's insn_aux_data.seen).</summary>
    private bool[] _seen = [];
    private readonly Dictionary<(int, int), int> _backEdgeCounts = [];
    private readonly StringBuilder? _log;
    private int _processed;
    private int _jumps;
    private int _processedAtLastCheckpoint;
    private int _jumpsAtLastCheckpoint;
    private int _totalStates;
    private int _maxDepth;
    private int _nextId;

    // The path being executed.
    private VerifierState _state = null!;
    private int _pc;

    public Engine(ProgramSpec program, PlatformTable platform, VerifierOptions options)
    {
        _program = program;
        _platform = platform;
        _options = options;
        _maps = [];
        foreach (var map in options.Maps)
            _maps.TryAdd(map.Name, map);
        _log = options.Log ? new StringBuilder() : null;
    }

    private FrameState Frame => _state.Current;
    private Instruction Insn => _graph[_pc];

    public VerifierResult Run()
    {
        var clock = Stopwatch.StartNew();
        var insns = LinkAgainstKernel();
        _graph = ProgramGraph.Build(insns, out var structureError);
        VerifierError? error = null;
        if (structureError is not null)
        {
            error = MakeError(structureError.InstructionIndex, structureError.Message, structureError.Hint, null);
        }
        else
        {
            _completed = new List<Checkpoint>[_graph.Count];
            _seen = new bool[_graph.Count];
            _inProgress = new Dictionary<int, List<Checkpoint>>[_graph.Count];
            _liveIn = Liveness.Compute(_graph, _platform);
            _stackLive = StackLiveness.Compute(_graph, _platform);
            MarkCallbackSites();
            try
            {
                Explore();
            }
            catch (Refusal refusal)
            {
                error = MakeError(_pc, refusal.Message, refusal.Hint, refusal.Register);
            }
        }
        clock.Stop();
        return new VerifierResult
        {
            ProgramName = _program.Name,
            Error = error,
            ProcessedInstructions = _processed,
            TotalStates = _totalStates,
            StackDepth = _maxDepth,
            Elapsed = clock.Elapsed,
            AccessFacts = _facts,
            Reached = error is null ? _seen : null,
            Log = _log?.ToString(),
        };
    }

    private VerifierError MakeError(int index, string message, string? hint, Register? register)
    {
        bool valid = index >= 0 && index < (_graph?.Count ?? 0);
        string? registerText = null, stateText = null;
        if (_state is not null && valid)
        {
            if (register is { } r)
                registerText = $"R{(int)r} = {RegisterValue(r)}";
            stateText = DescribeRegisters(_state.Current);
        }
        if (_log is not null)
            _log.AppendLine($"{index}: refused: {message}");
        return new VerifierError
        {
            InstructionIndex = index,
            RawIndex = valid ? _graph!.RawIndexOf(index) : index,
            Instruction = valid ? InstructionText.Format(_graph![index]) : "",
            Message = message,
            Hint = hint,
            RegisterState = registerText,
            SourceLine = SourceLineOf(index),
            State = stateText,
        };
    }

    private RegisterState RegisterValue(Register r) =>
        r == Register.R10 ? FramePointer() : _state.Current.Registers[(int)r];

    /// <summary>The C line covering instruction <paramref name="index"/>: the last line record at or before it.</summary>
    internal SourceLine? SourceLineOf(int index)
    {
        SourceLine? found = null;
        foreach (var line in _program.Lines)
        {
            if (line.InstructionIndex > index)
                break;
            found = line;
        }
        return found;
    }

    private static string DescribeRegisters(FrameState frame)
    {
        var parts = new List<string>();
        for (int r = 0; r < 10; r++)
        {
            if (frame.Registers[r].Type != RegisterType.NotInit)
                parts.Add($"R{r}={frame.Registers[r]}");
        }
        for (int s = FrameState.SlotCount - 1; s >= 0; s--)
        {
            if (frame.StackBytes[s * 8] == StackByte.Spill)
                parts.Add($"fp{s * 8 - FrameState.StackSize}={frame.Spills[s]}");
        }
        return string.Join(" ", parts);
    }

    private VerifierState InitialState()
    {
        var state = new VerifierState();
        var main = new FrameState { FunctionStart = 0 };
        for (int r = 0; r < 11; r++)
            main.Registers[r] = RegisterState.NotInit;
        main.Registers[1] = RegisterState.Pointer(RegisterType.Context);
        state.Frames.Add(main);
        return state;
    }

    private void Explore()
    {
        FindGlobalFunctions();
        _pending.Push(new PathItem(InitialState(), 0, null));
        ExplorePending();
        // Global functions are verified on their own after the main program, and only those a verified path calls
        // (the kernel verifies global subprograms lazily since 6.8): in order of their start, again while a pass
        // reaches new ones.
        var verified = new HashSet<int>();
        for (bool again = true; again;)
        {
            again = false;
            foreach (var global in _globals.Values.OrderBy(g => g.Start))
            {
                if (!_calledGlobals.Contains(global.Start) || !verified.Add(global.Start))
                    continue;
                _pending.Push(new PathItem(GlobalInitialState(global), global.Start, null));
                ExplorePending();
                again = true;
            }
        }
    }

    private void ExplorePending()
    {
        while (_pending.Count > 0)
        {
            var item = _pending.Pop();
            _state = item.State;
            _pc = item.Pc;
            _parent = item.Parent;
            _log?.AppendLine($"from path at {_pc}: {DescribeRegisters(Frame)}");
            while (true)
            {
                if (++_processed > _options.ComplexityLimit)
                    throw TooComplex();
                if (_graph.PrunePoints[_pc])
                {
                    if (IsCovered())
                    {
                        _log?.AppendLine($"{_pc}: safe (covered by a verified state)");
                        EndPath(_parent);
                        break;
                    }
                }
                if (_log is not null)
                    _log.AppendLine($"{_pc}: {InstructionText.Format(Insn)}    ; {DescribeRegisters(Frame)}");
                // As the kernel's jmps_processed: every instruction of the jump class counts, calls and exits too
                // (it decides how often a state is stored, so it decides where paths can be pruned).
                if (Insn.OpCode.IsJump)
                    _jumps++;
                _seen[_pc] = true;
                int next = Step(_parent);
                if (next < 0)
                {
                    EndPath(_parent);
                    break;
                }
                if (next <= _pc && _graph.FunctionOf[next] == _graph.FunctionOf[_pc])
                    CountBackEdge(_pc, next);
                _pc = next;
            }
        }
    }

    /// <summary>Forks the current path: the other edge continues later from <paramref name="pc"/> with <paramref name="state"/>.</summary>
    private void Fork(VerifierState state, int pc, Checkpoint? parent)
    {
        if (parent is not null)
            parent.Branches++;
        if (pc <= _pc && _graph.FunctionOf[pc] == _graph.FunctionOf[_pc])
            CountBackEdge(_pc, pc);
        _log?.AppendLine($"{_pc}: branch to {pc} pushed");
        _pending.Push(new PathItem(state, pc, parent));
    }

    private void EndPath(Checkpoint? parent)
    {
        for (var c = parent; c is not null; c = c.Parent)
        {
            if (--c.Branches > 0)
                break;
            // Every path below c is verified: c can now prune.
            if (_inProgress[c.Pc] is { } byHash && byHash.TryGetValue(c.Hash, out var same))
            {
                same.Remove(c);
                if (same.Count == 0)
                    byHash.Remove(c.Hash);
            }
            var completed = _completed[c.Pc] ??= [];
            if (completed.Count >= MaxCompletedStatesPerInstruction)
                completed.RemoveAt(0);
            completed.Add(c);
        }
    }

    private void CountBackEdge(int from, int to)
    {
        _backEdgeCounts.TryGetValue((from, to), out int n);
        _backEdgeCounts[(from, to)] = n + 1;
    }

    private Refusal TooComplex()
    {
        string message = $"the program is too complex: more than {_options.ComplexityLimit:N0} instructions processed over all paths (the kernel's limit is 1,000,000)";
        if (_backEdgeCounts.Count > 0)
        {
            var ((from, to), count) = _backEdgeCounts.MaxBy(kv => kv.Value);
            message += $"; the loop closed by the jump at instruction {from} back to {to} ran {count:N0} times without the verifier proving it ends";
            return new Refusal(message, "bound the loop by a constant the verifier can see (e.g. `for (i = 0; i < 64 && i < n; i++)`), or use bpf_loop()");
        }
        return new Refusal(message, "split the program with tail calls or bpf-to-bpf calls, or reduce the number of branches");
    }

    /// <summary>At a prune point: stop the path if a fully verified state here covers it; refuse an exact repeat of a
    /// state still being explored (a loop that makes no progress); else remember this state.</summary>
    private bool IsCovered()
    {
        // A call that runs a callback (again): every scalar compared by range, a state still being explored covers
        // too, and a state is always kept (Engine.Callbacks.cs).
        bool callbackSite = _callbackSites[_pc];
        // A state still being explored can only come back on a cycle (or through a caller's loop when in a call):
        // elsewhere the infinite-loop check, and the hash it needs, are skipped (callback sites compare with the
        // earlier runs on the path instead).
        bool loopCheck = !callbackSite && (_graph.OnCycle[_pc] || _state.Frames.Count > 1);
        int hash = loopCheck ? StateComparison.Hash(_state, _liveIn, _stackLive, _pc) : 0;
        if (_completed[_pc] is { } completed)
        {
            ulong types = TypeSignature(_state.Current);
            ulong offsets = OffsetSignature(_state.Current);
            for (int i = completed.Count - 1; i >= 0; i--)
            {
                var old = completed[i];
                bool all = old.MultiFrame || _options.WithoutPrecision || callbackSite;
                ushort regs = all ? ushort.MaxValue : old.PreciseRegs;
                ulong slots = all ? ulong.MaxValue : old.PreciseSlots;
                if ((types & old.TypeMask) == old.TypeBits && (offsets & old.OffsetMask) == old.OffsetBits
                    && !StateComparison.QuickReject(old.State, _state, _liveIn[_pc], regs)
                    && StateComparison.Covers(old.State, _state, _liveIn, _stackLive, _pc, regs, slots, uninitReadable: _options.Privileged))
                {
                    old.Hits++;
                    PropagatePrecision(old);
                    return true;
                }
                // As the kernel does, forget a state that keeps failing to cover new ones: long lists at hot
                // instructions cost more in comparisons than the rare prune they give. The kernel's factor is 3;
                // 64 keeps more states, since a lost prune costs processed instructions against the 1M limit.
                if (++old.Misses > old.Hits * 64 + 64)
                    completed.RemoveAt(i);
            }
        }
        if (callbackSite && CoveredByCallbackRun())
            return true;
        List<Checkpoint>? candidates = null;
        var byHash = loopCheck ? _inProgress[_pc] ??= [] : null;
        if (byHash is not null && byHash.TryGetValue(hash, out candidates))
        {
            // (candidates is reused below when this state is kept)
            foreach (var old in candidates)
            {
                if (StateComparison.Covers(old.State, _state, _liveIn, _stackLive, _pc, exact: true)
                    && StateComparison.Covers(_state, old.State, _liveIn, _stackLive, _pc, exact: true))
                {
                    var edge = _graph.BackEdges.FirstOrDefault(e => e.To == _pc);
                    throw new Refusal(
                        $"infinite loop: the state at instruction {_pc} repeats exactly on the path back from instruction {edge.From}, so the loop can never end",
                        "make the loop condition depend on a value that changes every iteration");
                }
            }
        }
        // As the kernel does, keep a new state only every few jumps and instructions: storing one at every prune
        // point of a tight loop costs memory and time and rarely prunes more.
        if (!callbackSite && (_processed - _processedAtLastCheckpoint < 8 || _jumps - _jumpsAtLastCheckpoint < 2))
            return false;
        // In a loop (a state here is still being explored), as the kernel: a new state only every 20 jumps or 100
        // instructions, since each iteration's state differs and rarely prunes.
        if (!callbackSite && byHash is { Count: > 0 } && _processed - _processedAtLastCheckpoint < 100 && _jumps - _jumpsAtLastCheckpoint < 20)
            return false;
        _processedAtLastCheckpoint = _processed;
        _jumpsAtLastCheckpoint = _jumps;
        if (byHash is not null && candidates is null)
        {
            candidates = [];
            byHash[hash] = candidates;
        }
        ulong live = _liveIn[_pc], mask = 0, offsetMask = 0;
        for (int r = 0; r < 10; r++)
        {
            var type = _state.Current.Registers[r].Type;
            if ((live & (1UL << r)) != 0 && type != RegisterType.NotInit)
            {
                mask |= 0xFUL << (4 * r);
                if (type != RegisterType.Scalar)
                    offsetMask |= 0x3FUL << (6 * r);
            }
        }
        var checkpoint = new Checkpoint(_state.Clone(), _parent, hash, _pc)
        {
            TypeMask = mask,
            TypeBits = TypeSignature(_state.Current) & mask,
            OffsetMask = offsetMask,
            OffsetBits = OffsetSignature(_state.Current) & offsetMask,
        };
        candidates?.Add(checkpoint);
        _totalStates++;
        _parent = checkpoint;
        ResetDependencies();
        return false;
    }

    // ---- Precision tracking -------------------------------------------------------------------------------------
    // Every scalar carries the locations of the path's last checkpoint it was computed from (RegisterState.Deps).
    // When a value decides something (a branch taken one way only, a pointer offset, a helper size, a constant map
    // key, a return value, a zero stored to the stack), those locations become precise in that checkpoint, and the
    // locations they came from in its parent, and so on up the chain: the forward counterpart of the kernel's
    // mark_chain_precision backtracking. A fully explored checkpoint then covers a new state whatever the values of
    // its imprecise scalars, which is what lets branchy programs prune as well as in the kernel.

    private Checkpoint? _parent;
    private readonly Dictionary<int, DepSet> _idDeps = [];

    /// <summary>After a checkpoint: every scalar now depends on its own location in it (copies sharing an id on
    /// all their locations, since a bound learned on one is learned by the others).</summary>
    private void ResetDependencies()
    {
        if (_state.Frames.Count > 1)
        {
            _state.UpdateAll(r => r.IsScalar ? r with { Deps = DepSet.Everything } : r);
            return;
        }
        var frame = _state.Frames[0];
        _idDeps.Clear();
        for (int r = 0; r < 10; r++)
        {
            var reg = frame.Registers[r];
            if (reg.IsScalar && reg.Id != 0)
                _idDeps[reg.Id] = _idDeps.GetValueOrDefault(reg.Id).Union(DepSet.Register(r));
        }
        for (int slot = 0; slot < FrameState.SlotCount; slot++)
        {
            if (frame.StackBytes[slot * 8] == StackByte.Spill && frame.Spills[slot] is { IsScalar: true, Id: not 0 } spilled)
                _idDeps[spilled.Id] = _idDeps.GetValueOrDefault(spilled.Id).Union(DepSet.Slot(slot));
        }
        for (int r = 0; r < 10; r++)
        {
            var reg = frame.Registers[r];
            if (reg.IsScalar)
                frame.Registers[r] = reg with { Deps = reg.Id != 0 ? _idDeps[reg.Id] : DepSet.Register(r) };
        }
        for (int slot = 0; slot < FrameState.SlotCount; slot++)
        {
            if (frame.StackBytes[slot * 8] != StackByte.Spill || frame.Spills[slot] is not { IsScalar: true } spilled)
                continue;
            var deps = spilled.Id != 0 ? _idDeps[spilled.Id] : DepSet.Slot(slot);
            if (spilled.Deps != deps)
                frame.SetSpill(slot, spilled with { Deps = deps });
        }
    }

    /// <summary>The locations in <paramref name="deps"/> of the current checkpoint become precise, and with them
    /// the locations of older checkpoints they were computed from.</summary>
    private void MarkPrecise(DepSet deps)
    {
        var c = _parent;
        while (c is not null && !deps.IsEmpty)
        {
            var next = default(DepSet);
            if (c.MultiFrame)
            {
                if (c.AllMarked)
                    return;
                c.AllMarked = true;
                foreach (var frame in c.State.Frames)
                    next = next.Union(AllDependencies(frame));
            }
            else
            {
                var frame = c.State.Frames[0];
                ushort regs = (ushort)((deps.All ? 0x3ff : deps.Regs) & ~c.PreciseRegs & 0x3ff);
                ulong slots = (deps.All ? ulong.MaxValue : deps.Slots) & ~c.PreciseSlots;
                c.PreciseRegs |= regs;
                c.PreciseSlots |= slots;
                for (int r = 0; r < 10; r++)
                {
                    if ((regs & (1 << r)) != 0 && frame.Registers[r].IsScalar)
                        next = next.Union(frame.Registers[r].Deps);
                }
                for (ulong m = slots; m != 0; m &= m - 1)
                {
                    int slot = System.Numerics.BitOperations.TrailingZeroCount(m);
                    if (frame.StackBytes[slot * 8] == StackByte.Spill && frame.Spills[slot].IsScalar)
                        next = next.Union(frame.Spills[slot].Deps);
                }
            }
            deps = next;
            c = c.Parent;
        }
    }

    private static DepSet AllDependencies(FrameState frame)
    {
        var all = default(DepSet);
        for (int r = 0; r < 10; r++)
        {
            if (frame.Registers[r].IsScalar)
                all = all.Union(frame.Registers[r].Deps);
        }
        for (int slot = 0; slot < FrameState.SlotCount; slot++)
        {
            if (frame.StackBytes[slot * 8] == StackByte.Spill && frame.Spills[slot].IsScalar)
                all = all.Union(frame.Spills[slot].Deps);
        }
        return all;
    }

    /// <summary>The current path ends because <paramref name="old"/> covers it: what old relied on, this path relies
    /// on too (the kernel's propagate_precision).</summary>
    private void PropagatePrecision(Checkpoint old)
    {
        var deps = default(DepSet);
        if (old.MultiFrame)
        {
            foreach (var frame in _state.Frames)
                deps = deps.Union(AllDependencies(frame));
        }
        else
        {
            var frame = _state.Frames[0];
            for (int r = 0; r < 10; r++)
            {
                if ((old.PreciseRegs & (1 << r)) != 0 && frame.Registers[r].IsScalar)
                    deps = deps.Union(frame.Registers[r].Deps);
            }
            for (ulong m = old.PreciseSlots; m != 0; m &= m - 1)
            {
                int slot = System.Numerics.BitOperations.TrailingZeroCount(m);
                if (frame.StackBytes[slot * 8] == StackByte.Spill && frame.Spills[slot].IsScalar)
                    deps = deps.Union(frame.Spills[slot].Deps);
            }
        }
        MarkPrecise(deps);
    }

    private static ulong OffsetSignature(FrameState frame)
    {
        ulong bits = 0;
        for (int r = 0; r < 10; r++)
            bits |= (ulong)(frame.Registers[r].Offset & 0x3F) << (6 * r);
        return bits;
    }

    private static ulong TypeSignature(FrameState frame)
    {
        ulong bits = 0;
        for (int r = 0; r < 10; r++)
            bits |= (ulong)frame.Registers[r].Type << (4 * r);
        return bits;
    }

    private int NewId() => ++_nextId;

    private RegisterState FramePointer() => new()
    {
        Type = RegisterType.Stack,
        Offset = 0,
        Value = Scalar.Const(0),
        Frame = _state.Frames.Count - 1,
    };

    /// <summary>Reads a register; reading one never written is refused.</summary>
    private RegisterState Read(Register r)
    {
        if (r == Register.R10)
            return FramePointer();
        var value = Frame.Registers[(int)r];
        if (value.Type == RegisterType.NotInit)
        {
            throw new Refusal($"R{(int)r} is read before it is written (!read_ok)",
                r is >= Register.R1 and <= Register.R5
                    ? $"r1-r5 do not survive a call: keep values needed after a call in r6-r9 or on the stack"
                    : $"set r{(int)r} on every path that reaches this instruction", r);
        }
        return value;
    }

    private void Write(Register r, RegisterState value)
    {
        if (r == Register.R10)
            throw new Refusal("r10 (the frame pointer) is read-only", "copy r10 to another register and change the copy", r);
        Frame.Registers[(int)r] = value;
    }

    private void RecordAccess(MemoryRegion region)
    {
        _facts.TryGetValue(_pc, out var fact);
        _facts[_pc] = new AccessFact(fact.Regions | region, true);
    }
}
