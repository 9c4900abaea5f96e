using System.Runtime.InteropServices;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_ARRAY_OF_MAPS and BPF_MAP_TYPE_HASH_OF_MAPS: values are inner maps, set from user code
/// (<see cref="SetInnerMap(ReadOnlySpan{byte}, ManagedMap?, MapUpdateFlags)"/>) or written as bytes holding an
/// inner map's <see cref="ManagedMap.Id"/> (where the kernel takes an fd). A program lookup returns the inner map's
/// <see cref="ManagedMap.ProgramHandle"/>, which the program then passes to map helpers; a user lookup gives the
/// inner map's id, as the kernel gives its id.
/// <para>Kernel semantics kept: the spec needs an inner map template, which may not itself hold maps; an inner
/// map must match the template (type, key size, value size, flags, and max entries unless the template has
/// BPF_F_INNER_MAP) or EINVAL; the value size is 4; programs cannot update or delete; the array form takes only
/// BPF_ANY, is E2BIG past its end and ENOENT deleting an empty slot; the hash form has hash semantics.</para>
/// </summary>
public sealed unsafe class MapOfMaps : ManagedMap
{
    private readonly MapSpec _template;
    private readonly bool _isArray;
    // Array form: one handle pointer a slot. Hash form: a hash table whose 8-byte values are handle pointers.
    private readonly nint* _slots;
    private readonly HashMap? _table;
    // Inner maps are kept alive while referenced, as the kernel holds a reference.
    private readonly Dictionary<string, ManagedMap> _inner = [];
    private readonly Lock _lock = new();

    internal MapOfMaps(MapSpec spec) : base(Validate(spec))
    {
        _template = spec.InnerMap!;
        _isArray = spec.Type == MapType.ArrayOfMaps;
        if (_isArray)
            _slots = (nint*)NativeMemory.AllocZeroed((nuint)MaxEntries, (nuint)sizeof(nint));
        else
            _table = new HashMap(new MapSpec
            {
                Name = spec.Name, Type = MapType.Hash, KeySize = spec.KeySize, ValueSize = 8, MaxEntries = spec.MaxEntries,
            });
    }

    private static MapSpec Validate(MapSpec spec)
    {
        var isArray = spec.Type == MapType.ArrayOfMaps;
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.Require(spec, spec.ValueSize == 4, Errno.EINVAL, $"value size must be 4 (a map fd), got {spec.ValueSize}");
        if (isArray)
            SpecCheck.KeySize(spec, 4);
        else
            SpecCheck.Require(spec, spec.KeySize > 0, Errno.EINVAL, "key size must be greater than 0");
        SpecCheck.Flags(spec, isArray
            ? (uint)(MapCreateFlags.NumaNode | MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly)
            : (uint)(MapCreateFlags.NoPrealloc | MapCreateFlags.NumaNode | MapCreateFlags.ZeroSeed |
                     MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly));
        SpecCheck.Require(spec, spec.MaxEntries <= 1 << 24, Errno.ENOMEM, $"{spec.MaxEntries} entries are too many");
        var inner = spec.InnerMap;
        SpecCheck.Require(spec, inner is not null, Errno.EINVAL, "the inner map template is missing");
        SpecCheck.Require(spec, inner!.Type is not (MapType.ArrayOfMaps or MapType.HashOfMaps), Errno.EINVAL,
            "an inner map cannot itself hold maps");
        SpecCheck.Require(spec, inner.Type is not MapType.ProgArray, Errno.ENOTSUPP,
            "a program array cannot be an inner map");
        return spec;
    }

    /// <summary>The template inner maps must match.</summary>
    public MapSpec InnerTemplate => _template;

    private void CheckCompatible(ManagedMap inner)
    {
        var sameMax = inner.MaxEntries == (int)_template.MaxEntries ||
                      (_template.Flags & (uint)MapCreateFlags.InnerMap) != 0;
        if (inner.Type != _template.Type || inner.KeySize != (int)_template.KeySize ||
            inner.ValueSize != (int)_template.ValueSize || inner.Flags != _template.Flags || !sameMax)
        {
            throw new MapException(Name, "update", Errno.EINVAL,
                $"inner map '{inner.Name}' ({inner.Type}, key {inner.KeySize}, value {inner.ValueSize}, max {inner.MaxEntries}) " +
                $"does not match the template ({_template.Type}, key {_template.KeySize}, value {_template.ValueSize}, max {_template.MaxEntries})");
        }
    }

    // ---- lookups ------------------------------------------------------------------------------------------------

    public override byte* LookupForProgram(byte* key, int cpu)
    {
        if (_isArray)
        {
            var index = *(uint*)key;
            return index < (uint)MaxEntries ? (byte*)Volatile.Read(ref _slots[index]) : null;
        }
        var value = _table!.LookupForProgram(key, 0);
        return value == null ? null : (byte*)Volatile.Read(ref *(nint*)value);
    }

    /// <summary>The inner map at <paramref name="key"/> (array form), or null.</summary>
    public ManagedMap? GetInnerMap(uint key) => GetInnerMap(MemoryMarshal.AsBytes(new ReadOnlySpan<uint>(ref key)));

    /// <summary>The inner map at <paramref name="key"/>, or null.</summary>
    public ManagedMap? GetInnerMap(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
            throw new ArgumentException($"map '{Name}': key must be {KeySize} bytes, got {key.Length}");
        fixed (byte* k = key)
            return FromProgramHandle(LookupForProgram(k, 0));
    }

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        var inner = GetInnerMap(key);
        if (inner is null)
            return false;
        var id = inner.Id;
        MemoryMarshal.Write(value, in id);
        return true;
    }

    // ---- updates ------------------------------------------------------------------------------------------------

    /// <summary>Sets the inner map at <paramref name="key"/> (array form).</summary>
    public void SetInnerMap(uint key, ManagedMap? inner, MapUpdateFlags flags = MapUpdateFlags.Any) =>
        SetInnerMap(MemoryMarshal.AsBytes(new ReadOnlySpan<uint>(ref key)), inner, flags);

    /// <summary>Sets the inner map at <paramref name="key"/>; null deletes the entry.</summary>
    public void SetInnerMap(ReadOnlySpan<byte> key, ManagedMap? inner, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("update");
        if (inner is null)
        {
            Delete(key);
            return;
        }
        if ((ulong)flags > (ulong)MapUpdateFlags.Exist || (_isArray && flags != MapUpdateFlags.Any))
            throw Fail("update", Errno.EINVAL);
        ObjectDisposedException.ThrowIf(inner.IsDisposed, inner);
        CheckCompatible(inner);
        var handle = (nint)inner.ProgramHandle;
        lock (_lock)
        {
            if (_isArray)
            {
                var index = MemoryMarshal.Read<uint>(key);
                if (index >= (uint)MaxEntries)
                    throw Fail("update", Errno.E2BIG);
                Volatile.Write(ref _slots[index], handle);
            }
            else
            {
                _table!.Update(key, MemoryMarshal.AsBytes(new ReadOnlySpan<nint>(ref handle)), flags);
            }
            _inner[Convert.ToHexString(key)] = inner;
        }
    }

    /// <summary>Sets an entry from bytes: the value is the inner map's id (EBADF when no live map has it).</summary>
    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        var inner = FromId(MemoryMarshal.Read<uint>(value)) ?? throw Fail("update", Errno.EBADF);
        SetInnerMap(key, inner, flags);
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("delete");
        lock (_lock)
        {
            bool removed;
            if (_isArray)
            {
                var index = MemoryMarshal.Read<uint>(key);
                if (index >= (uint)MaxEntries)
                    throw Fail("delete", Errno.E2BIG);
                removed = Interlocked.Exchange(ref _slots[index], 0) != 0;
            }
            else
            {
                removed = _table!.Delete(key);
            }
            _inner.Remove(Convert.ToHexString(key));
            return removed;
        }
    }

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.EINVAL;

    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) =>
        _isArray ? ArrayKeys.Next(this, key, nextKey) : _table!.TryGetNextKey(key, nextKey);

    public override void Reclaim() => _table?.Reclaim();

    private protected override void ReclaimBefore(long oldestActive) => _table?.ReclaimUnreachable();

    protected override void Dispose(bool disposing)
    {
        if (_slots != null)
            NativeMemory.Free(_slots);
        if (disposing)
            _table?.Dispose();
    }
}
