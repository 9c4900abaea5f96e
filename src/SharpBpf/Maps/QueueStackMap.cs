using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_QUEUE (FIFO) and BPF_MAP_TYPE_STACK (LIFO): no keys (key size 0), values pushed, popped and peeked.
/// <para>Kernel semantics kept: a ring of MaxEntries + 1 slots; push on a full map is E2BIG unless the flags
/// are BPF_EXIST, which drops the oldest element to make room (for both kinds); BPF_NOEXIST is EINVAL on push;
/// pop and peek of an empty map are ENOENT; lookup/update/delete/get_next_key by key are not supported
/// (user-space lookup is a peek, update a push, as the kernel's syscall does).</para>
/// </summary>
public sealed unsafe class QueueStackMap : ManagedMap
{
    private readonly byte[] _slots;
    private readonly int _size;
    private readonly bool _stack;
    private readonly Lock _lock = new();
    private int _head; // next write
    private int _tail; // oldest

    internal QueueStackMap(MapSpec spec) : base(Validate(spec))
    {
        _stack = spec.Type == MapType.Stack;
        _size = MaxEntries + 1;
        _slots = new byte[(long)_size * ValueSize];
    }

    private static MapSpec Validate(MapSpec spec)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.KeySize(spec, 0);
        SpecCheck.ValueSizeNonZero(spec);
        SpecCheck.Flags(spec, (uint)MapCreateFlags.NumaNode | MapFlagMasks.Access);
        SpecCheck.Require(spec, spec.ValueSize <= SpecCheck.KmallocMax, Errno.E2BIG, $"value size {spec.ValueSize} is too big");
        var total = ((long)spec.MaxEntries + 1) * spec.ValueSize;
        SpecCheck.Require(spec, total <= SpecCheck.MaxPreallocBytes && total < Array.MaxLength, Errno.ENOMEM,
            $"{spec.MaxEntries} entries of {spec.ValueSize} bytes are too many");
        return spec;
    }

    /// <summary>Elements currently held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return (_head - _tail + _size) % _size;
        }
    }

    private Span<byte> Slot(int index) => _slots.AsSpan(index * ValueSize, ValueSize);

    private int Push(ReadOnlySpan<byte> value, ulong flags)
    {
        if ((flags & (ulong)MapUpdateFlags.NoExist) != 0 || flags > (ulong)MapUpdateFlags.Exist)
            return -Errno.EINVAL;
        lock (_lock)
        {
            if ((_head + 1) % _size == _tail)
            {
                if (flags != (ulong)MapUpdateFlags.Exist)
                    return -Errno.E2BIG;
                _tail = (_tail + 1) % _size; // drop the oldest
            }
            value.CopyTo(Slot(_head));
            _head = (_head + 1) % _size;
            return 0;
        }
    }

    private int Take(Span<byte> value, bool remove)
    {
        lock (_lock)
        {
            if (_head == _tail)
                return -Errno.ENOENT;
            int index;
            if (_stack)
            {
                index = (_head - 1 + _size) % _size;
                if (remove)
                    _head = index;
            }
            else
            {
                index = _tail;
                if (remove)
                    _tail = (_tail + 1) % _size;
            }
            Slot(index).CopyTo(value);
            return 0;
        }
    }

    public override int PushFromProgram(byte* value, ulong flags) => Push(new ReadOnlySpan<byte>(value, ValueSize), flags);

    public override int PopFromProgram(byte* value) => Take(new Span<byte>(value, ValueSize), remove: true);

    public override int PeekFromProgram(byte* value) => Take(new Span<byte>(value, ValueSize), remove: false);

    public override byte* LookupForProgram(byte* key, int cpu) => null;

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.EINVAL;

    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    /// <summary>Peek (BPF_MAP_LOOKUP_ELEM with no key). False when empty.</summary>
    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanRead("lookup");
        return Take(value, remove: false) == 0;
    }

    /// <summary>Pop (BPF_MAP_LOOKUP_AND_DELETE_ELEM). False when empty.</summary>
    public bool TryPop(Span<byte> value)
    {
        CheckUserSizes(0, value.Length);
        EnsureUserCanWrite("pop");
        return Take(value, remove: true) == 0;
    }

    /// <summary>Push (BPF_MAP_UPDATE_ELEM with no key).</summary>
    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("push");
        var status = Push(value, (ulong)flags);
        if (status != 0)
            throw Fail("push", -status);
    }

    /// <summary>Push, named as what it does.</summary>
    public void Push(ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any) => Update([], value, flags);

    public override bool Delete(ReadOnlySpan<byte> key) => throw Fail("delete", Errno.EINVAL);

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => throw Fail("get next key", Errno.EINVAL);
}
