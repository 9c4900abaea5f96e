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

/// <summary>
/// 64 bytes of a frame's stack (8 slots) and the registers spilled in them. A frame's stack is eight chunks, shared
/// between forked states until one of them writes (copy on write per chunk): most forks and checkpoints touch one
/// chunk of the stack at most, and a chunk is a small copy where the whole stack (512 bytes plus 64 spill slots of
/// about 120 bytes) was a large one. <see cref="Empty"/> stands for a chunk never written.
/// </summary>
internal sealed class StackChunk
{
    public const int ByteCount = 64;
    public const int SlotCount = 8;

    [System.Runtime.CompilerServices.InlineArray(ByteCount)]
    public struct ByteArray
    {
        private StackByte _first;
    }

    [System.Runtime.CompilerServices.InlineArray(SlotCount)]
    public struct SpillArray
    {
        private RegisterState _first;
    }

    public ByteArray Bytes;
    public SpillArray Spills;

    /// <summary>The chunk of a stack never written (all bytes invalid): shared, never written itself.</summary>
    public static readonly StackChunk Empty = new();

    public StackChunk Copy() => (StackChunk)MemberwiseClone();
}

/// <summary>One function's frame: its eleven registers and 512-byte stack, and where it returns to.</summary>
internal sealed class FrameState
{
    public const int StackSize = 512;
    public const int SlotCount = StackSize / 8;
    private const int ChunkCount = StackSize / StackChunk.ByteCount;

    public RegisterState[] Registers { get; } = new RegisterState[11];

    [System.Runtime.CompilerServices.InlineArray(ChunkCount)]
    private struct ChunkArray
    {
        private StackChunk _first;
    }

    private ChunkArray _chunks;

    /// <summary>Bit c: chunk c belongs to this frame alone and may be written in place.</summary>
    private byte _owned;

    public FrameState()
    {
        for (int c = 0; c < ChunkCount; c++)
            _chunks[c] = StackChunk.Empty;
    }

    /// <summary>Byte i describes the byte at fp - 512 + i. Read-only view: write with <see cref="SetByte"/>.</summary>
    public StackByteView StackBytes => new(this);

    /// <summary>Slot s holds the register spilled at fp - 512 + 8s, when its eight bytes are <see cref="StackByte.Spill"/>.
    /// Read-only view: write with <see cref="SetSpill"/>.</summary>
    public SpillView Spills => new(this);

    private WritableBytesView? _writableBytes;
    private WritableSpillsView? _writableSpills;

    /// <summary>Indexable stack bytes whose writes copy a shared chunk first (<c>frame.WritableStackBytes[i] = b</c>
    /// is <see cref="SetByte"/>).</summary>
    public WritableBytesView WritableStackBytes => _writableBytes ??= new WritableBytesView(this);

    /// <summary>Indexable spill slots whose writes copy a shared chunk first (<c>frame.WritableSpills[s] = r</c> is
    /// <see cref="SetSpill"/>).</summary>
    public WritableSpillsView WritableSpills => _writableSpills ??= new WritableSpillsView(this);

    public StackByte ByteAt(int i) => _chunks[i / StackChunk.ByteCount].Bytes[i % StackChunk.ByteCount];

    public ref readonly RegisterState SpillAt(int slot) => ref _chunks[slot / StackChunk.SlotCount].Spills[slot % StackChunk.SlotCount];

    /// <summary>True when slot <paramref name="slot"/> starts with a spilled register (a full or narrow spill).</summary>
    public bool IsSpill(int slot) => ByteAt(slot * 8) == StackByte.Spill;

    /// <summary>True when the 8 slots of chunk <paramref name="chunk"/> (slots 8c..8c+7) were never written on this path.</summary>
    public bool ChunkIsEmpty(int chunk) => ReferenceEquals(_chunks[chunk], StackChunk.Empty);

    /// <summary>The eight bytes of slot <paramref name="slot"/> as one word (byte i of the slot in bits 8i..8i+7).</summary>
    public ulong SlotWord(int slot) =>
        System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(SlotBytes(slot));

    /// <summary>True when a byte of the slot word <paramref name="word"/> is <see cref="StackByte.Spill"/>.</summary>
    public static bool HasSpillByte(ulong word)
    {
        ulong x = word ^ 0x0303_0303_0303_0303UL; // StackByte.Spill = 3 in every byte
        return ((x - 0x0101_0101_0101_0101UL) & ~x & 0x8080_8080_8080_8080UL) != 0;
    }

    /// <summary>The eight bytes of slot <paramref name="slot"/> as raw bytes (for hashing).</summary>
    public ReadOnlySpan<byte> SlotBytes(int slot) =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(
            ((ReadOnlySpan<StackByte>)_chunks[slot / StackChunk.SlotCount].Bytes).Slice(slot % StackChunk.SlotCount * 8, 8));

    private StackChunk Writable(int chunk)
    {
        if ((_owned & (1 << chunk)) == 0)
        {
            _chunks[chunk] = _chunks[chunk].Copy();
            _owned |= (byte)(1 << chunk);
        }
        return _chunks[chunk];
    }

    public void SetByte(int i, StackByte value)
    {
        if (ByteAt(i) != value)
            Writable(i / StackChunk.ByteCount).Bytes[i % StackChunk.ByteCount] = value;
    }

    public void SetSpill(int slot, RegisterState value) =>
        Writable(slot / StackChunk.SlotCount).Spills[slot % StackChunk.SlotCount] = value;

    /// <summary>How many bytes of the spill in <paramref name="slot"/> there are (8, or 1/2/4 for a narrow spill of a
    /// number: its low addresses), 0 when the slot holds no spill.</summary>
    internal static int SpillSize(StackByteView bytes, int slot) => bytes.Frame.SpillSize(slot);

    internal int SpillSize(int slot)
    {
        var chunk = _chunks[slot / StackChunk.SlotCount];
        int b = slot % StackChunk.SlotCount * 8;
        int n = 0;
        while (n < 8 && chunk.Bytes[b + n] == StackByte.Spill)
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
        var copy = new FrameState(this);
        _owned = 0;
        return copy;
    }

    private FrameState(FrameState from)
    {
        ReturnTo = from.ReturnTo;
        FunctionStart = from.FunctionStart;
        IsCallback = from.IsCallback;
        Depth = from.Depth;
        CallbackDepth = from.CallbackDepth;
        from.Registers.CopyTo(Registers, 0);
        _chunks = from._chunks;
    }

    /// <summary>Read-only indexable view of a frame's 512 stack bytes.</summary>
    internal readonly struct StackByteView(FrameState frame)
    {
        public FrameState Frame => frame;
        public StackByte this[int i] => frame.ByteAt(i);
        public int Length => StackSize;
    }

    internal sealed class WritableBytesView(FrameState frame)
    {
        public StackByte this[int i]
        {
            get => frame.ByteAt(i);
            set => frame.SetByte(i, value);
        }
    }

    internal sealed class WritableSpillsView(FrameState frame)
    {
        public RegisterState this[int slot]
        {
            get => frame.SpillAt(slot);
            set => frame.SetSpill(slot, value);
        }
    }

    /// <summary>Read-only indexable view of a frame's 64 spill slots.</summary>
    internal readonly struct SpillView(FrameState frame)
    {
        public ref readonly RegisterState this[int slot] => ref frame.SpillAt(slot);
    }
}

/// <summary>A held bpf_spin_lock: the map, the id of the map value pointer it was taken through (one lookup),
/// and the instruction that took it.</summary>
internal sealed record HeldLock(MapSpec Map, int PointerId, int At);

/// <summary>The whole abstract state on one path: the call frames, innermost last, and held references.</summary>
internal sealed class VerifierState
{
    public List<FrameState> Frames { get; }

    private Dictionary<int, int>? _references;

    public VerifierState() => Frames = new List<FrameState>(1);

    private VerifierState(int frames) => Frames = new List<FrameState>(frames);

    /// <summary>References (ring buffer reservations) acquired and not yet released: id -> instruction index.</summary>
    public Dictionary<int, int> References => _references ??= [];

    /// <summary>How many references are held (without creating the table).</summary>
    public int ReferenceCount => _references?.Count ?? 0;

    /// <summary>The bpf_spin_lock held on this path (the kernel's active_lock), or null.</summary>
    public HeldLock? Lock { get; set; }

    public FrameState Current => Frames[^1];

    public VerifierState Clone()
    {
        var copy = new VerifierState(Frames.Count);
        foreach (var frame in Frames)
            copy.Frames.Add(frame.Clone());
        if (_references is { Count: > 0 })
            copy._references = new Dictionary<int, int>(_references);
        copy.Lock = Lock;
        return copy;
    }

    /// <summary>Applies <paramref name="change"/> to every register and spilled register of every frame.</summary>
    public void UpdateAll(Func<RegisterState, RegisterState> change)
    {
        foreach (var frame in Frames)
        {
            var registers = frame.Registers;
            for (int r = 0; r < registers.Length; r++)
                registers[r] = change(registers[r]);
            for (int c = 0; c < FrameState.SlotCount / StackChunk.SlotCount; c++)
            {
                if (frame.ChunkIsEmpty(c))
                    continue;
                for (int s = c * StackChunk.SlotCount; s < (c + 1) * StackChunk.SlotCount; s++)
                {
                    if (!frame.IsSpill(s))
                        continue;
                    var spilled = frame.SpillAt(s);
                    var updated = change(spilled);
                    if (updated != spilled)
                        frame.SetSpill(s, updated);
                }
            }
        }
    }
}
