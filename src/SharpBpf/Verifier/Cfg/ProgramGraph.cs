using SharpBpf.Asm;

namespace SharpBpf.Verifier.Cfg;

/// <summary>A structural fault found before any value is tracked: where, why and how to fix it.</summary>
public sealed record StructureError(int InstructionIndex, string Message, string? Hint = null);

/// <summary>
/// The program's control-flow structure: raw-slot addressing, jump and call targets, functions, reachability and
/// back edges. Built once and checked before the abstract interpretation starts, as the kernel's check_subprogs and
/// check_cfg do: a jump out of range or into the second slot of an lddw, a jump leaving its function, an
/// instruction no path reaches, a function whose last instruction falls off the end, a bad opcode or a reserved
/// field in use are all refused here.
/// </summary>
public sealed class ProgramGraph
{
    private readonly Instruction[] _insns; // a copy: indexing an array, not an interface, on every step
    private readonly int[] _rawIndex;
    private readonly int[] _indexOfRaw;

    private ProgramGraph(IReadOnlyList<Instruction> insns)
    {
        _insns = insns as Instruction[] ?? [.. insns];
        _rawIndex = new int[insns.Count + 1];
        int raw = 0;
        for (int i = 0; i < insns.Count; i++)
        {
            _rawIndex[i] = raw;
            raw += insns[i].RawSize;
        }
        _rawIndex[insns.Count] = raw;
        RawLength = raw;
        _indexOfRaw = new int[raw + 1];
        Array.Fill(_indexOfRaw, -1);
        for (int i = 0; i <= insns.Count; i++)
            _indexOfRaw[_rawIndex[i]] = i;
        PrunePoints = new bool[insns.Count];
        FunctionOf = new int[insns.Count];
    }

    public int Count => _insns.Length;
    public int RawLength { get; }
    public Instruction this[int index] => _insns[index];

    /// <summary>Raw slot index of logical instruction <paramref name="index"/>.</summary>
    public int RawIndexOf(int index) => _rawIndex[index];

    /// <summary>Starts of functions (index 0 first), sorted.</summary>
    public IReadOnlyList<int> Functions { get; private set; } = [];

    /// <summary>For each instruction, the start of the function that holds it.</summary>
    public int[] FunctionOf { get; }

    /// <summary>Instructions where states are kept for pruning, as in the kernel: conditional jumps, jump targets,
    /// instructions after calls, bpf-to-bpf calls and the functions they enter.</summary>
    public bool[] PrunePoints { get; }

    /// <summary>Per instruction: true when it lies on a cycle of its function's graph (calls fall through), i.e. a
    /// path may come back to it. Only there can a state repeat itself on one path (the infinite-loop check).</summary>
    internal bool[] OnCycle { get; private set; } = [];

    // Successors inside the function, computed once after the jumps were checked: -1 when there is none.
    private int[] _fallThrough = [];
    private int[] _jumpTo = [];

    /// <summary>The successors of <paramref name="index"/> (see <see cref="Successors"/>), without allocating:
    /// <paramref name="first"/> and <paramref name="second"/> are -1 when absent.</summary>
    internal void SuccessorsOf(int index, out int first, out int second)
    {
        first = _fallThrough[index];
        second = _jumpTo[index];
        if (first < 0)
        {
            first = second;
            second = -1;
        }
    }

    /// <summary>Back edges (from, to) of loops, by logical index.</summary>
    public List<(int From, int To)> BackEdges { get; } = [];

    /// <summary>Target of the jump at <paramref name="index"/> (logical), or -1 when it is not a jump or is out of range.</summary>
    public int JumpTarget(int index)
    {
        var insn = _insns[index];
        int delta = insn.OpCode.Class == InstructionClass.Jmp32 && insn.OpCode.JumpOperation == JumpOperation.Ja
            ? insn.Immediate : insn.Offset;
        return IndexAtRaw(_rawIndex[index] + 1 + delta);
    }

    /// <summary>Target function of a bpf-to-bpf call or of an lddw of a function address.</summary>
    public int CallTarget(int index) => IndexAtRaw(_rawIndex[index] + 1 + _insns[index].Immediate);

    internal int IndexAtRaw(long raw) => raw < 0 || raw > RawLength ? -1 : _indexOfRaw[raw];

    /// <summary>Builds the graph, or returns the first structural fault.</summary>
    public static ProgramGraph Build(IReadOnlyList<Instruction> insns, out StructureError? error)
    {
        var graph = new ProgramGraph(insns);
        error = graph.Check();
        return graph;
    }

    private StructureError? Check()
    {
        if (Count == 0)
            return new StructureError(0, "the program is empty");
        if (RawLength > 1_000_000)
            return new StructureError(0, $"the program has {RawLength} instructions, more than the 1,000,000 the kernel takes");

        for (int i = 0; i < Count; i++)
        {
            if (InstructionRules.Check(_insns[i]) is { } fault)
                return new StructureError(i, fault.Message, fault.Hint);
        }

        // Functions: the main program and every target of a bpf-to-bpf call or function-address lddw.
        var starts = new SortedSet<int> { 0 };
        for (int i = 0; i < Count; i++)
        {
            var insn = _insns[i];
            bool localCall = insn.OpCode.Value == 0x85 && insn.Src == (Register)CallKind.Local;
            bool funcAddress = insn.IsLoadImmediate64 && insn.Src == (Register)LoadImmediateSource.Function;
            if (!localCall && !funcAddress)
                continue;
            long raw = (long)_rawIndex[i] + 1 + insn.Immediate;
            int target = IndexAtRaw(raw);
            if (raw < 0 || raw >= RawLength)
                return new StructureError(i, $"call to a function at raw instruction {raw}, outside the program (0..{RawLength - 1})");
            if (target < 0)
                return new StructureError(i, $"call into the middle of the lddw at raw instruction {raw - 1}");
            starts.Add(target);
        }
        Functions = [.. starts];
        for (int f = 0; f < Functions.Count; f++)
        {
            int start = Functions[f], end = f + 1 < Functions.Count ? Functions[f + 1] : Count;
            for (int i = start; i < end; i++)
                FunctionOf[i] = start;
            var last = _insns[end - 1];
            bool exitOrJump = last.OpCode.Value is 0x95 or 0x05 || (last.OpCode.Value == 0x06);
            if (!exitOrJump)
                return new StructureError(end - 1, "the last instruction of a function is neither exit nor an unconditional jump: execution would fall off the end",
                    "end the function with `exit` (return a value in r0)");
        }

        // Jumps: in range, not into an lddw's second slot, not out of their function.
        for (int i = 0; i < Count; i++)
        {
            var insn = _insns[i];
            if (!IsJumpWithTarget(insn))
                continue;
            int delta = insn.OpCode.Class == InstructionClass.Jmp32 && insn.OpCode.JumpOperation == JumpOperation.Ja ? insn.Immediate : insn.Offset;
            long raw = (long)_rawIndex[i] + 1 + delta;
            if (raw < 0 || raw >= RawLength)
                return new StructureError(i, $"jump out of range: the target, raw instruction {raw}, is outside the program (0..{RawLength - 1})");
            int target = _indexOfRaw[raw];
            if (target < 0)
                return new StructureError(i, $"jump into the middle of the lddw at raw instruction {raw - 1}");
            if (FunctionOf[target] != FunctionOf[i])
                return new StructureError(i, $"jump from function at {FunctionOf[i]} into function at {FunctionOf[target]}: jumps must stay inside their function",
                    "call the other function instead of jumping into it");
            // As the kernel's check_cfg (since 6.3): a conditional jump is a prune point itself (the state is
            // checked before it forks), and so is every jump target; the fall-through is not.
            PrunePoints[target] = true;
            if (insn.OpCode.JumpOperation != JumpOperation.Ja)
                PrunePoints[i] = true;
        }

        _fallThrough = new int[Count];
        _jumpTo = new int[Count];
        for (int i = 0; i < Count; i++)
        {
            var insn = _insns[i];
            _fallThrough[i] = -1;
            _jumpTo[i] = -1;
            if (insn.OpCode.Value == 0x95)
                continue;
            if (IsJumpWithTarget(insn))
            {
                _jumpTo[i] = JumpTarget(i);
                if (insn.OpCode.JumpOperation != JumpOperation.Ja && i + 1 < Count)
                    _fallThrough[i] = i + 1;
                continue;
            }
            if (i + 1 < Count)
                _fallThrough[i] = i + 1;
        }

        // Reachability and back edges by depth-first search from every function start reached from main.
        var state = new byte[Count]; // 0 unseen, 1 on stack, 2 done
        var reached = new bool[Count];
        var functionsToVisit = new Stack<int>();
        functionsToVisit.Push(0);
        var functionSeen = new HashSet<int> { 0 };
        while (functionsToVisit.Count > 0)
        {
            int entry = functionsToVisit.Pop();
            var stack = new Stack<(int Node, int NextSuccessor)>();
            stack.Push((entry, 0));
            state[entry] = 1;
            reached[entry] = true;
            while (stack.Count > 0)
            {
                var (node, next) = stack.Pop();
                SuccessorsOf(node, out int first, out int second);
                int count = first < 0 ? 0 : second < 0 ? 1 : 2;
                if (next < count)
                {
                    stack.Push((node, next + 1));
                    int s = next == 0 ? first : second;
                    if (state[s] == 0)
                    {
                        state[s] = 1;
                        reached[s] = true;
                        stack.Push((s, 0));
                    }
                    else if (state[s] == 1)
                    {
                        BackEdges.Add((node, s));
                        PrunePoints[s] = true;
                    }
                    continue;
                }
                state[node] = 2;
                var insn = _insns[node];
                bool callsFunction = (insn.OpCode.Value == 0x85 && insn.Src == (Register)CallKind.Local)
                    || (insn.IsLoadImmediate64 && insn.Src == (Register)LoadImmediateSource.Function);
                if (callsFunction && functionSeen.Add(CallTarget(node)))
                    functionsToVisit.Push(CallTarget(node));
                if (insn.OpCode.Value == 0x85 && node + 1 < Count)
                    PrunePoints[node + 1] = true;
                // A bpf-to-bpf call: the call and the callee's entry too (the kernel's visit_func_call_insn).
                if (insn.OpCode.Value == 0x85 && insn.Src == (Register)CallKind.Local)
                {
                    PrunePoints[node] = true;
                    PrunePoints[CallTarget(node)] = true;
                }
            }
        }
        for (int i = 0; i < Count; i++)
        {
            if (!reached[i])
                return new StructureError(i, "unreachable instruction: no path from the entry leads here",
                    "remove the dead code (the kernel refuses programs with unreachable instructions)");
        }
        OnCycle = FindCycles();
        return null;
    }

    /// <summary>Instructions in a strongly connected component with a cycle (Tarjan's algorithm, iterative).</summary>
    private bool[] FindCycles()
    {
        var onCycle = new bool[Count];
        if (BackEdges.Count == 0)
            return onCycle; // every cycle holds a back edge of the depth-first search
        var index = new int[Count];
        var low = new int[Count];
        var onStack = new bool[Count];
        Array.Fill(index, -1);
        var components = new Stack<int>();
        var work = new Stack<(int Node, int Next)>();
        int counter = 0;
        for (int root = 0; root < Count; root++)
        {
            if (index[root] >= 0)
                continue;
            work.Push((root, 0));
            while (work.Count > 0)
            {
                var (node, next) = work.Pop();
                if (next == 0)
                {
                    index[node] = low[node] = counter++;
                    components.Push(node);
                    onStack[node] = true;
                }
                SuccessorsOf(node, out int a, out int b);
                int successor = next == 0 ? a : next == 1 ? b : -1;
                if (successor >= 0 || next < 2)
                {
                    work.Push((node, next + 1));
                    if (successor < 0)
                        continue;
                    if (index[successor] < 0)
                        work.Push((successor, 0));
                    else if (onStack[successor])
                        low[node] = Math.Min(low[node], index[successor]);
                    continue;
                }
                // All successors done: pass the low link up, and close the component at its root.
                if (work.Count > 0)
                {
                    var (parent, _) = work.Peek();
                    low[parent] = Math.Min(low[parent], low[node]);
                }
                if (low[node] != index[node])
                    continue;
                int member = components.Pop();
                onStack[member] = false;
                if (member == node)
                {
                    onCycle[node] = a == node || b == node; // a component of one: a cycle only by a self-loop
                    continue;
                }
                onCycle[member] = true;
                do
                {
                    member = components.Pop();
                    onStack[member] = false;
                    onCycle[member] = true;
                }
                while (member != node);
            }
        }
        return onCycle;
    }

    private static bool IsJumpWithTarget(Instruction insn) =>
        insn.OpCode.IsJump && insn.OpCode.JumpOperation is not (JumpOperation.Call or JumpOperation.Exit);

    /// <summary>Successors inside the function (calls fall through to the next instruction).</summary>
    public IReadOnlyList<int> Successors(int index)
    {
        var insn = _insns[index];
        if (insn.OpCode.Value == 0x95)
            return [];
        if (IsJumpWithTarget(insn))
        {
            int target = JumpTarget(index);
            if (insn.OpCode.JumpOperation == JumpOperation.Ja)
                return [target];
            return index + 1 < Count ? [index + 1, target] : [target];
        }
        return index + 1 < Count ? [index + 1] : [];
    }
}
