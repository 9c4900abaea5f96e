using System.Runtime.InteropServices;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY, and the global-data maps (.data, .rodata, .bss, .kconfig)
/// whose single value is initialised from <see cref="MapSpec.InitialValue"/>.
/// <para>Elements are preallocated and zeroed, never deleted (delete is EINVAL), so NOEXIST always fails with
/// EEXIST and an index past the end is E2BIG on update. One contiguous block of unmanaged memory holds them:</para>
/// <code>
///   array:         | elem 0 | elem 1 | ... |             each element ValueSize rounded up to 8
///   percpu array:  | e0 cpu0 | e0 cpu1 | ... | e1 cpu0 | ... (user values are one element's CPUs in a row)
/// </code>
/// </summary>
public sealed unsafe class ArrayMap : ManagedMap
{
    private readonly byte* _data;
    private readonly bool _percpu;
    private readonly bool _readOnlyProgram;
    private readonly int _cpus;

    internal ArrayMap(MapSpec spec) : base(Validate(spec))
    {
        _percpu = spec.Type == MapType.PercpuArray;
        _cpus = _percpu ? PossibleCpus : 1;
        ElementSize = Round8(ValueSize);
        DataLength = (long)ElementSize * _cpus * MaxEntries;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)DataLength, 64);
        NativeMemory.Clear(_data, (nuint)DataLength);
        if (spec.InitialValue is { } initial)
            initial.CopyTo(new Span<byte>(_data, initial.Length));
        _readOnlyProgram = spec.Freeze;
        if (spec.Freeze)
            Freeze();
    }

    private static MapSpec Validate(MapSpec spec)
    {
        var percpu = spec.Type == MapType.PercpuArray;
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.KeySize(spec, 4);
        SpecCheck.ValueSizeNonZero(spec);
        var allowed = (uint)(MapCreateFlags.NumaNode | MapCreateFlags.Mmapable | MapCreateFlags.PreserveElements |
                             MapCreateFlags.InnerMap) | MapFlagMasks.Access;
        SpecCheck.Flags(spec, allowed);
        SpecCheck.Require(spec, !(percpu && (spec.Flags & (uint)MapCreateFlags.Mmapable) != 0), Errno.EINVAL,
            "a per-CPU array cannot be mmapable");
        SpecCheck.Require(spec, percpu ? spec.ValueSize <= SpecCheck.PerCpuValueMax : spec.ValueSize <= int.MaxValue,
            Errno.E2BIG, $"value size {spec.ValueSize} is too big");
        var cpus = percpu ? PossibleCpus : 1;
        var total = (long)Round8((int)spec.ValueSize) * spec.MaxEntries * cpus;
        SpecCheck.Require(spec, total <= SpecCheck.MaxPreallocBytes, Errno.ENOMEM,
            $"{spec.MaxEntries} entries of {spec.ValueSize} bytes need {total} bytes");
        if (spec.InitialValue is { } initial)
            SpecCheck.Require(spec, !percpu && initial.Length <= spec.ValueSize, Errno.EINVAL,
                $"initial value of {initial.Length} bytes does not fit the value size {spec.ValueSize}");
        SpecCheck.Require(spec, !spec.Freeze || !percpu, Errno.EINVAL, "only a plain array can be frozen as global data");
        return spec;
    }

    /// <summary>Bytes between two elements (ValueSize rounded up to 8).</summary>
    public int ElementSize { get; }

    /// <summary>Start of the element block: programs may access [Data, Data + DataLength).</summary>
    public byte* Data => _data;

    /// <summary>Size of the element block in bytes.</summary>
    public long DataLength { get; }

    public override bool IsPerCpu => _percpu;

    public override bool IsReadOnlyForProgram => _readOnlyProgram || base.IsReadOnlyForProgram;

    public override int UserValueSize => _percpu ? ElementSize * _cpus : ValueSize;

    /// <summary>The value of element <paramref name="index"/> (for <paramref name="cpu"/> in per-CPU arrays),
    /// or null past the end.</summary>
    public byte* ElementPointer(uint index, int cpu = 0)
    {
        if (index >= (uint)MaxEntries || (uint)cpu >= (uint)_cpus)
            return null;
        return _data + ((long)index * _cpus + cpu) * ElementSize;
    }

    public override byte* LookupForProgram(byte* key, int cpu) =>
        ElementPointer(*(uint*)key, _percpu ? cpu : 0);

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu)
    {
        if (IsReadOnlyForProgram)
            return -Errno.EPERM;
        var status = CheckUpdate(*(uint*)key, flags);
        if (status != 0)
            return status;
        var target = ElementPointer(*(uint*)key, _percpu ? cpu : 0);
        if (target == null)
            return -Errno.EINVAL;
        Buffer.MemoryCopy(value, target, ValueSize, ValueSize);
        return 0;
    }

    private int CheckUpdate(uint index, ulong flags)
    {
        // BPF_F_LOCK needs a bpf_spin_lock in the value, which needs BTF: never the case here.
        if (flags > (ulong)MapUpdateFlags.Exist)
            return -Errno.EINVAL;
        if (index >= (uint)MaxEntries)
            return -Errno.E2BIG;
        if (flags == (ulong)MapUpdateFlags.NoExist)
            return -Errno.EEXIST; // all elements always exist
        return 0;
    }

    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    public override int ForEachForProgram(MapElementVisitor visitor, int cpu)
    {
        ArgumentNullException.ThrowIfNull(visitor);
        if ((uint)cpu >= (uint)_cpus && _percpu)
            return -Errno.EINVAL;
        uint index = 0;
        var visited = 0;
        for (; index < (uint)MaxEntries; index++)
        {
            var key = index; // the visitor may write through the key pointer: give it a copy
            visited++;
            if (!visitor((byte*)&key, ElementPointer(index, _percpu ? cpu : 0)))
                break;
        }
        return visited;
    }

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanRead("lookup");
        var index = MemoryMarshal.Read<uint>(key);
        if (index >= (uint)MaxEntries)
            return false;
        var first = ElementPointer(index);
        if (_percpu)
            new ReadOnlySpan<byte>(first, UserValueSize).CopyTo(value);
        else
            new ReadOnlySpan<byte>(first, ValueSize).CopyTo(value);
        return true;
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        var index = MemoryMarshal.Read<uint>(key);
        var status = CheckUpdate(index, (ulong)flags);
        if (status != 0)
            throw Fail("update", -status);
        if (_percpu)
        {
            // User space passes each CPU's value rounded up to 8 bytes, the same stride as our layout.
            value.CopyTo(new Span<byte>(ElementPointer(index), UserValueSize));
        }
        else
        {
            value.CopyTo(new Span<byte>(ElementPointer(index), ValueSize));
        }
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        throw Fail("delete", Errno.EINVAL);
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        CheckNextKeyArgs(key, nextKey);
        uint next;
        if (key.IsEmpty || MemoryMarshal.Read<uint>(key) >= (uint)MaxEntries)
            next = 0;
        else if (MemoryMarshal.Read<uint>(key) == (uint)MaxEntries - 1)
            return false;
        else
            next = MemoryMarshal.Read<uint>(key) + 1;
        MemoryMarshal.Write(nextKey, in next);
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        // Programs never run after dispose (the VM owns the maps it runs with), so the block can go.
        if (_data != null)
            NativeMemory.AlignedFree(_data);
    }
}
