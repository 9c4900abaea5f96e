using System.Runtime.InteropServices;
using SharpBpf.Maps;
using SharpBpf.Objects;

namespace SharpBpf.Tests.Vm;

/// <summary>A minimal array map for VM tests that must not depend on the managed maps' implementation.</summary>
internal sealed unsafe class TestArrayMap : ManagedMap
{
    private readonly byte* _values;

    public TestArrayMap(MapSpec spec) : base(spec)
    {
        _values = (byte*)NativeMemory.AllocZeroed((nuint)(ValueSize * MaxEntries));
        if (spec.InitialValue is { } initial)
            initial.CopyTo(new Span<byte>(_values, ValueSize));
    }

    public override byte* LookupForProgram(byte* key, int cpu) =>
        *(uint*)key < (uint)MaxEntries ? _values + *(uint*)key * (uint)ValueSize : null;

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu)
    {
        if (*(uint*)key >= (uint)MaxEntries)
            return -Errno.E2BIG;
        Buffer.MemoryCopy(value, _values + *(uint*)key * (uint)ValueSize, ValueSize, ValueSize);
        return 0;
    }

    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        uint k = MemoryMarshal.Read<uint>(key);
        if (k >= (uint)MaxEntries)
            return false;
        new ReadOnlySpan<byte>(_values + k * (uint)ValueSize, ValueSize).CopyTo(value);
        return true;
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        uint k = MemoryMarshal.Read<uint>(key);
        if (k >= (uint)MaxEntries)
            throw new MapException(Name, "update", Errno.E2BIG);
        value.CopyTo(new Span<byte>(_values + k * (uint)ValueSize, ValueSize));
    }

    public override bool Delete(ReadOnlySpan<byte> key) => false;

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        uint next = key.Length == 0 ? 0 : MemoryMarshal.Read<uint>(key) + 1;
        if (next >= (uint)MaxEntries)
            return false;
        MemoryMarshal.Write(nextKey, next);
        return true;
    }

    protected override void Dispose(bool disposing) => NativeMemory.Free(_values);
}
