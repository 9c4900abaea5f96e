using System.Runtime.InteropServices;
using SharpBpf.Objects;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_PROG_ARRAY: the slots bpf_tail_call jumps through. A slot holds a program id and, optionally, a
/// program handle set from user code (<see cref="SetProgram"/>); the VM decides what either means. Written as
/// bytes, a value is a program id; when <see cref="ProgramResolver"/> is set it must turn the id into a handle
/// (EBADF otherwise, as the kernel refuses a bad fd), when it is not the id is stored alone.
/// <para>For engines that identify programs by id, <see cref="LookupForProgram"/> returns a pointer to the slot's
/// id (null for an empty slot); verified programs never look up a program array themselves.</para>
/// <para>Kernel semantics kept: key and value are 4 bytes; only BPF_ANY updates (EINVAL otherwise); index past
/// the end is E2BIG on update and delete; deleting an empty slot is ENOENT; programs cannot look up or change
/// slots (only tail-call through them); lookup from user space gives the program id.</para>
/// </summary>
public sealed unsafe class ProgramArrayMap : ManagedMap
{
    private readonly object?[] _programs;
    private readonly uint* _ids; // unmanaged so program lookups can return pointers
    private readonly int[] _present;
    private readonly Lock _lock = new();

    internal ProgramArrayMap(MapSpec spec) : base(Validate(spec))
    {
        _programs = new object?[MaxEntries];
        _ids = (uint*)NativeMemory.AllocZeroed((nuint)MaxEntries, sizeof(uint));
        _present = new int[MaxEntries];
    }

    internal static MapSpec Validate(MapSpec spec)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.KeySize(spec, 4);
        SpecCheck.Require(spec, spec.ValueSize == 4, Errno.EINVAL, $"value size must be 4 (a program fd), got {spec.ValueSize}");
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NumaNode | MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly |
                                     MapCreateFlags.PreserveElements | MapCreateFlags.InnerMap));
        SpecCheck.Require(spec, spec.MaxEntries <= 1 << 24, Errno.ENOMEM, $"{spec.MaxEntries} slots are too many");
        return spec;
    }

    /// <summary>Turns a program id written as a value into a program handle (null: no such program, EBADF).</summary>
    public Func<uint, object?>? ProgramResolver { get; set; }

    /// <summary>Sets (or clears, with null) a slot from user code. <paramref name="id"/> is what user-space lookups
    /// report for the slot.</summary>
    public void SetProgram(int index, object? program, uint id = 0)
    {
        if ((uint)index >= (uint)MaxEntries)
            throw Fail("update", Errno.E2BIG);
        lock (_lock)
        {
            _ids[index] = program is null ? 0 : id;
            Volatile.Write(ref _programs[index], program);
            Volatile.Write(ref _present[index], program is null ? 0 : 1);
        }
    }

    private void SetId(uint index, uint id)
    {
        lock (_lock)
        {
            _ids[index] = id;
            Volatile.Write(ref _programs[index], null);
            Volatile.Write(ref _present[index], 1);
        }
    }

    /// <summary>The program in the slot, or null (empty or past the end): what a tail call jumps to.</summary>
    public object? GetProgram(uint index) => index < (uint)MaxEntries ? Volatile.Read(ref _programs[index]) : null;

    public override byte* LookupForProgram(byte* key, int cpu)
    {
        var index = *(uint*)key;
        return index < (uint)MaxEntries && Volatile.Read(ref _present[index]) != 0 ? (byte*)(_ids + index) : null;
    }

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.EINVAL;
    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        var index = MemoryMarshal.Read<uint>(key);
        if (index >= (uint)MaxEntries)
            return false;
        lock (_lock)
        {
            if (_present[index] == 0)
                return false;
            MemoryMarshal.Write(value, in _ids[index]);
            return true;
        }
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        if (flags != MapUpdateFlags.Any)
            throw Fail("update", Errno.EINVAL);
        var index = MemoryMarshal.Read<uint>(key);
        if (index >= (uint)MaxEntries)
            throw Fail("update", Errno.E2BIG);
        var id = MemoryMarshal.Read<uint>(value);
        if (ProgramResolver is null)
        {
            SetId(index, id);
            return;
        }
        var program = ProgramResolver(id) ?? throw Fail("update", Errno.EBADF);
        SetProgram((int)index, program, id);
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("delete");
        var index = MemoryMarshal.Read<uint>(key);
        if (index >= (uint)MaxEntries)
            throw Fail("delete", Errno.E2BIG);
        lock (_lock)
        {
            if (_present[index] == 0)
                return false;
            Volatile.Write(ref _present[index], 0);
            Volatile.Write(ref _programs[index], null);
            return true;
        }
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => ArrayKeys.Next(this, key, nextKey);

    protected override void Dispose(bool disposing)
    {
        if (_ids != null)
            NativeMemory.Free(_ids);
    }
}

/// <summary>get_next_key of every array-shaped map: every index, present or not, in order.</summary>
internal static class ArrayKeys
{
    public static bool Next(ManagedMap map, ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        if (!key.IsEmpty && key.Length != 4 || nextKey.Length != 4)
            throw new ArgumentException($"map '{map.Name}': keys are 4 bytes");
        uint next;
        if (key.IsEmpty || MemoryMarshal.Read<uint>(key) >= (uint)map.MaxEntries)
            next = 0;
        else if (MemoryMarshal.Read<uint>(key) == (uint)map.MaxEntries - 1)
            return false;
        else
            next = MemoryMarshal.Read<uint>(key) + 1;
        MemoryMarshal.Write(nextKey, in next);
        return true;
    }
}
