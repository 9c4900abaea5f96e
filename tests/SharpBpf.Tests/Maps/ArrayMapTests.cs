using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe class ArrayMapTests
{
    [Fact]
    public void ElementsExistZeroedAndUpdatesAreSeenThroughProgramPointers()
    {
        using var map = Create(MapType.Array, 4, 8, 4);
        Assert.Equal(0ul, map.Lookup<uint, ulong>(3));
        var p = ProgLookup(map, U32(2));
        Assert.True(p != null);
        map.Update<uint, ulong>(2, 0x1122334455667788);
        Assert.Equal(0x1122334455667788ul, *(ulong*)p);
        *(ulong*)p = 7; // programs write values in place
        Assert.Equal(7ul, map.Lookup<uint, ulong>(2));
        Assert.True(ProgLookup(map, U32(4)) == null);
        Assert.False(map.TryLookup<uint, ulong>(4, out _));
    }

    [Fact]
    public void FlagsAndErrnosAreTheKernels()
    {
        using var map = Create(MapType.Array, 4, 8, 4);
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, ulong>(1, 5, MapUpdateFlags.NoExist)));
        map.Update<uint, ulong>(1, 5, MapUpdateFlags.Exist);
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Update<uint, ulong>(4, 5)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update<uint, ulong>(1, 5, MapUpdateFlags.Lock)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Delete<uint>(1)));
        Assert.Equal(-Errno.EINVAL, ProgDelete(map, U32(1)));
        Assert.Equal(-Errno.EEXIST, ProgUpdate(map, U32(0), U64(1), 1));
        Assert.Equal(-Errno.E2BIG, ProgUpdate(map, U32(9), U64(1)));
        Assert.Equal(-Errno.EINVAL, ProgUpdate(map, U32(0), U64(1), 8));
        Assert.Equal(0, ProgUpdate(map, U32(0), U64(42), 2));
        Assert.Equal(42ul, map.Lookup<uint, ulong>(0));
    }

    [Fact]
    public void NextKeyWalksIndicesAndRestartsOnOutOfRangeKeys()
    {
        using var map = Create(MapType.Array, 4, 4, 3);
        Assert.Equal([0u, 1u, 2u], map.Keys.Select(k => BitConverter.ToUInt32(k)).ToArray());
        var next = new byte[4];
        Assert.True(map.TryGetNextKey(U32(77), next));
        Assert.Equal(0u, BitConverter.ToUInt32(next));
        Assert.False(map.TryGetNextKey(U32(2), next));
    }

    [Theory]
    [InlineData(8u, 4u, 1u, 0u, Errno.EINVAL)]   // key must be 4
    [InlineData(4u, 0u, 1u, 0u, Errno.EINVAL)]   // value size 0
    [InlineData(4u, 4u, 0u, 0u, Errno.EINVAL)]   // max entries 0
    [InlineData(4u, 4u, 1u, 1u, Errno.EINVAL)]   // BPF_F_NO_PREALLOC is not an array flag
    [InlineData(4u, 4u, 1u, 0x18u, Errno.EINVAL)] // read-only and write-only together
    [InlineData(4u, 1u << 31, 1u, 0u, Errno.E2BIG)]
    [InlineData(4u, 1u << 30, 4u, 0u, Errno.ENOMEM)] // our bound on preallocation
    public void BadSpecsAreRefusedSayingWhy(uint key, uint value, uint max, uint flags, int errno)
    {
        var e = Assert.Throws<MapException>(() => Create(MapType.Array, key, value, max, flags, name: "counters"));
        Assert.Equal(errno, e.ErrorNumber);
        Assert.Contains("counters", e.Message);
        Assert.Contains("Array", e.Message);
    }

    [Fact]
    public void PerCpuArrayKeepsOneValuePerCpuAndUserSeesAll()
    {
        using var map = Create(MapType.PercpuArray, 4, 4, 2);
        Assert.True(map.IsPerCpu);
        Assert.Equal(8 * ManagedMap.PossibleCpus, map.UserValueSize);
        for (var cpu = 0; cpu < ManagedMap.PossibleCpus; cpu++)
            Assert.Equal(0, ProgUpdate(map, U32(1), U32((uint)(100 + cpu)), 0, cpu));
        var values = map.LookupPerCpu<uint, uint>(1)!;
        Assert.Equal(Enumerable.Range(100, ManagedMap.PossibleCpus).Select(i => (uint)i), values);
        var p0 = ProgLookup(map, U32(1), 0);
        Assert.Equal(100u, *(uint*)p0);
        map.UpdatePerCpu<uint, uint>(0, Enumerable.Repeat(9u, ManagedMap.PossibleCpus).ToArray());
        Assert.Equal(9u, *(uint*)ProgLookup(map, U32(0), ManagedMap.PossibleCpus - 1));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => Create(MapType.PercpuArray, 4, 40000, 1)));
    }

    [Fact]
    public void GlobalDataStartsFromTheInitialValueAndRodataIsFrozen()
    {
        using var data = MapFactory.Create(new MapSpec
        {
            Name = ".data", Type = MapType.Array, KeySize = 4, ValueSize = 12, MaxEntries = 1,
            InitialValue = [1, 2, 3, 4, 5, 6, 7, 8],
        });
        var value = new byte[12];
        Assert.True(data.TryLookup(U32(0), value));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0 }, value);
        Assert.False(data.IsReadOnlyForProgram);

        using var rodata = MapFactory.Create(new MapSpec
        {
            Name = ".rodata", Type = MapType.Array, KeySize = 4, ValueSize = 4, MaxEntries = 1,
            InitialValue = [9, 0, 0, 0], Freeze = true,
        });
        Assert.True(rodata.IsReadOnlyForProgram);
        Assert.True(rodata.IsFrozen);
        Assert.Equal(9u, rodata.Lookup<uint, uint>(0));
        Assert.Equal(Errno.EPERM, ThrowsErrno(() => rodata.Update<uint, uint>(0, 1)));
        Assert.Equal(-Errno.EPERM, ProgUpdate(rodata, U32(0), U32(1)));
        Assert.Equal(Errno.EBUSY, ThrowsErrno(rodata.Freeze));

        var tooLong = Assert.Throws<MapException>(() => MapFactory.Create(new MapSpec
        {
            Name = ".data", Type = MapType.Array, KeySize = 4, ValueSize = 2, MaxEntries = 1, InitialValue = [1, 2, 3],
        }));
        Assert.Contains("initial value", tooLong.Message);
    }

    [Fact]
    public void TypedHelpersCheckSizes()
    {
        using var map = Create(MapType.Array, 4, 8, 1);
        Assert.Throws<ArgumentException>(() => map.Update<uint, uint>(0, 1));
        Assert.Throws<InvalidOperationException>(() => map.LookupPerCpu<uint, ulong>(0));
    }

    [Fact]
    public void BatchLookupWalksEverythingInSlices()
    {
        using var map = Create(MapType.Array, 4, 4, 5);
        for (uint i = 0; i < 5; i++)
            map.Update(i, i * 10);
        byte[]? cursor = null;
        var keys = new byte[8];
        var values = new byte[8];
        var seen = new List<uint>();
        int n;
        while ((n = map.LookupBatch(ref cursor, keys, values)) > 0)
            for (var i = 0; i < n; i++)
                seen.Add(BitConverter.ToUInt32(values, i * 4));
        Assert.Equal([0u, 10u, 20u, 30u, 40u], seen);
        var e = Assert.Throws<MapBatchException>(() => map.UpdateBatch(
            [.. U32(0), .. U32(7)], [.. U32(1), .. U32(2)]));
        Assert.Equal(1, e.Completed);
        Assert.Equal(Errno.E2BIG, e.ErrorNumber);
        Assert.Equal(1u, map.Lookup<uint, uint>(0));
    }

    [Fact]
    public void ConcurrentProgramIncrementsThroughPointersAreAllCounted()
    {
        using var map = Create(MapType.Array, 4, 8, 1);
        var p = ProgLookup(map, U32(0));
        Parallel.For(0, 4, _ =>
        {
            for (var i = 0; i < 10000; i++)
                Interlocked.Increment(ref *(long*)p);
        });
        Assert.Equal(40000ul, map.Lookup<uint, ulong>(0));
    }
}
