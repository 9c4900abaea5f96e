using SharpBpf.Objects;

namespace SharpBpf.Verifier.Domains;

/// <summary>What is known of one byte of a stack frame.</summary>
public enum StackByte : byte
{
    /// <summary>Never written.</summary>
    Invalid = 0,
    /// <summary>Written with something not tracked (a partial store, an unknown scalar).</summary>
    Misc,
    /// <summary>Known to be zero.</summary>
    Zero,
    /// <summary>Part of an 8-byte register spill: the slot's <see cref="FrameState.Spills"/> entry says what.</summary>
    Spill,
}

/// <summary>One function's frame: its eleven registers and 512-byte stack, and where it returns to.</summary>
public sealed class FrameState
{
    public const int StackSize = 512;
    public const int SlotCount = StackSize / 8;

    public RegisterState[] Registers { get; } = new RegisterState[11];

    // The stack arrays are shared between clones until one of them writes (copy on write): most forks and
    // checkpoints never touch the stack, and a frame's stack is 512 bytes plus 64 spill slots.
    private StackByte[] _stackBytes = new StackByte[StackSize];
    private RegisterState[] _spills = new RegisterState[SlotCount];
    private bool _shared;

    /// <summary>Byte i describes the byte at fp - 512 + i. Read-only view: write through <see cref="WritableStackBytes"/>.</summary>
    public StackByte[] StackBytes => _stackBytes;

    /// <summary>Slot s holds the register spilled at fp - 512 + 8s, when its eight bytes are <see cref="StackByte.Spill"/>.
    /// Read-only view: write through <see cref="WritableSpills"/>.</summary>
    public RegisterState[] Spills => _spills;

    public StackByte[] WritableStackBytes
    {
        get
        {
            Unshare();
            return _stackBytes;
        }
    }

    public RegisterState[] WritableSpills
    {
        get
        {
            Unshare();
            return _spills;
        }
    }

    private void Unshare()
    {
        if (!_shared)
            return;
        _stackBytes = (StackByte[])_stackBytes.Clone();
        _spills = (RegisterState[])_spills.Clone();
        _shared = false;
    }

    /// <summary>How many bytes of the spill in <paramref name="slot"/> there are (8, or 1/2/4 for a narrow spill of a
    /// number: its low addresses), 0 when the slot holds no spill.</summary>
    internal static int SpillSize(StackByte[] bytes, int slot)
    {
        int n = 0;
        while (n < 8 && bytes[slot * 8 + n] == StackByte.Spill)
            n++;
        return n;
    }

    /// <summary>Instruction index to continue at when this frame returns (-1 for the main frame).</summary>
    public int ReturnTo { get; init; } = -1;

    /// <summary>Instruction index where this frame's function starts.</summary>
    public int FunctionStart { get; init; }

    /// <summary>For a callback frame, the helper that called it (its return value then comes from the helper).</summary>
    public bool IsCallback { get; init; }

    /// <summary>Deepest stack byte used (bytes below fp), for the combined stack limit.</summary>
    public int Depth { get; set; }

    /// <summary>How many times in a row this frame's current callback-calling helper has run its callback on this
    /// path (the kernel's callback_depth: bpf_loop stops at its nr_loops). Not compared when pruning.</summary>
    public int CallbackDepth { get; set; }

    public FrameState Clone()
    {
        var copy = new FrameState { ReturnTo = ReturnTo, FunctionStart = FunctionStart, IsCallback = IsCallback, Depth = Depth, CallbackDepth = CallbackDepth };
        Registers.CopyTo(copy.Registers, 0);
        copy._stackBytes = _stackBytes;
        copy._spills = _spills;
        copy._shared = true;
        _shared = true;
        return copy;
    }
}

/// <summary>The whole abstract state on one path: the call frames, innermost last, and held references.</summary>
/// <summary>A held bpf_spin_lock: the map, the id of the map value pointer it was taken through (one lookup),
/// and the instruction that took it.</summary>
public sealed record HeldLock(MapSpec Map, int PointerId, int At);

public sealed class VerifierState
{
    public List<FrameState> Frames { get; } = [];

    /// <summary>References (ring buffer reservations) acquired and not yet released: id -> instruction index.</summary>
    public Dictionary<int, int> References { get; } = [];

    /// <summary>The bpf_spin_lock held on this path (the kernel's active_lock), or null.</summary>
    public HeldLock? Lock { get; set; }

    public FrameState Current => Frames[^1];

    public VerifierState Clone()
    {
        var copy = new VerifierState();
        foreach (var frame in Frames)
            copy.Frames.Add(frame.Clone());
        foreach (var (id, at) in References)
            copy.References[id] = at;
        copy.Lock = Lock;
        return copy;
    }

    /// <summary>Applies <paramref name="change"/> to every register and spilled register of every frame.</summary>
    public void UpdateAll(Func<RegisterState, RegisterState> change)
    {
        foreach (var frame in Frames)
        {
            for (int r = 0; r < frame.Registers.Length; r++)
                frame.Registers[r] = change(frame.Registers[r]);
            for (int s = 0; s < FrameState.SlotCount; s++)
            {
                if (frame.StackBytes[s * 8] != StackByte.Spill)
                    continue;
                var updated = change(frame.Spills[s]);
                if (updated != frame.Spills[s])
                    frame.WritableSpills[s] = updated;
            }
        }
    }
}
