using System.Buffers.Binary;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Linux.Tests;

public class MapTests
{
    private static BpfMap Create(MapType type, uint maxEntries = 1000, uint valueSize = 8) =>
        BpfMap.Create(new MapSpec { Name = "sb_test_" + type, Type = type, KeySize = 4, ValueSize = valueSize, MaxEntries = maxEntries });

    [Theory]
    [InlineData(MapType.Hash)]
    [InlineData(MapType.LruHash)]
    public void HashCrud(MapType type)
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var map = Create(type);
        Assert.Equal(type, map.Type);
        Assert.False(map.TryLookup(1u, out ulong _));
        map.Update(1u, 10ul, MapUpdateFlags.NoExist);
        var e = Assert.Throws<BpfSyscallException>(() => map.Update(1u, 11ul, MapUpdateFlags.NoExist));
        Assert.Equal(Errno.EEXIST, e.ErrorNumber);
        Assert.Throws<BpfSyscallException>(() => map.Update(2u, 11ul, MapUpdateFlags.Exist));
        map.Update(1u, 12ul, MapUpdateFlags.Exist);
        Assert.True(map.TryLookup(1u, out ulong v));
        Assert.Equal(12ul, v);
        Assert.True(map.Delete(1u));
        Assert.False(map.Delete(1u));
        Assert.Empty(map.Keys());
    }

    [Fact]
    public void ArrayHasEveryKeyAndRefusesDelete()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var map = Create(MapType.Array, maxEntries: 4);
        map.Update(2u, 7ul);
        var keys = map.Keys().Select(k => BinaryPrimitives.ReadUInt32LittleEndian(k)).ToList();
        Assert.Equal([0u, 1u, 2u, 3u], keys);
        Assert.True(map.TryLookup(2u, out ulong v));
        Assert.Equal(7ul, v);
        Assert.Throws<BpfSyscallException>(() => map.Delete(0u));
        Assert.Throws<BpfSyscallException>(() => map.Update(4u, 1ul)); // out of range: E2BIG
    }

    [Theory]
    [InlineData(MapType.PercpuHash)]
    [InlineData(MapType.PercpuArray)]
    public void PerCpuValuesComeAsOnePerPossibleCpu(MapType type)
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var map = Create(type, maxEntries: 8, valueSize: 4); // 4-byte values are padded to 8 per CPU
        int cpus = BpfMap.PossibleCpus.Count;
        Assert.Equal(8 * cpus, map.ValueBufferSize);
        var values = Enumerable.Range(0, cpus).Select(i => (uint)(100 + i)).ToArray();
        map.UpdatePerCpu(3u, values);
        Assert.Equal(values, map.LookupPerCpu<uint, uint>(3u));
        Assert.Throws<InvalidOperationException>(() => map.Update(3u, 1u));
        var raw = map.Lookup(BitConverter.GetBytes(3u))!;
        Assert.Equal(values, map.SplitPerCpu(raw).Select(b => BitConverter.ToUInt32(b)).ToArray());
    }

    [Theory]
    [InlineData(MapType.Hash)]
    [InlineData(MapType.Array)]
    [InlineData(MapType.PercpuHash)]
    [InlineData(MapType.PercpuArray)]
    public void BatchUpdateLookupAndDeleteAgreeWithSingleElementCalls(MapType type)
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        const int n = 1000;
        using var map = Create(type, maxEntries: n);
        int valueSize = map.ValueBufferSize;
        var keys = new byte[n * 4];
        var values = new byte[n * valueSize];
        for (int i = 0; i < n; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(keys.AsSpan(i * 4), (uint)i);
            for (int c = 0; c < valueSize / 8; c++)
                BinaryPrimitives.WriteUInt64LittleEndian(values.AsSpan(i * valueSize + c * 8), (ulong)(i * 1000 + c));
        }
        map.UpdateBatch(keys, values, n);

        // Small batches force several rounds (and, for hashes, possibly a bucket larger than the batch).
        var batched = map.EntriesBatched(batchSize: 7);
        var walked = map.Entries().ToList();
        Assert.Equal(n, batched.Count);
        Assert.Equal(
            walked.Select(e => Convert.ToHexString(e.Key) + ":" + Convert.ToHexString(e.Value)).Order(),
            batched.Select(e => Convert.ToHexString(e.Key) + ":" + Convert.ToHexString(e.Value)).Order());
        foreach (var (key, value) in batched)
        {
            uint k = BinaryPrimitives.ReadUInt32LittleEndian(key);
            Assert.Equal((ulong)(k * 1000), BinaryPrimitives.ReadUInt64LittleEndian(value));
        }

        if (type is MapType.Hash or MapType.PercpuHash)
        {
            Assert.Equal(10, map.DeleteBatch(keys, 10));
            Assert.Equal(n - 10, map.Keys().Count());
        }
    }

    [Fact]
    public void WrongSizesAreRefusedBeforeTheKernelSeesThem()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var map = Create(MapType.Hash);
        var e = Assert.Throws<ArgumentException>(() => map.Update(1ul, 1ul));
        Assert.Contains("keys are 4 bytes", e.Message);
        Assert.Throws<ArgumentException>(() => map.Update(new byte[4], new byte[3]));
    }

    [Fact]
    public void OpenByIdAndEnumerate()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var map = Create(MapType.Hash);
        Assert.Contains(map.Id, BpfMap.AllIds());
        using var byId = BpfMap.FromId(map.Id);
        map.Update(5u, 55ul);
        Assert.True(byId.TryLookup(5u, out ulong v));
        Assert.Equal(55ul, v);
        var info = byId.GetInfo();
        Assert.Equal(MapType.Hash, info.Type);
        Assert.Equal(1000u, info.MaxEntries);
    }

    [Fact]
    public void CpuListParsing()
    {
        Assert.Equal([0, 1, 2, 3], BpfMap.ParseCpuList("0-3\n"));
        Assert.Equal([0, 1, 2, 3, 4, 5], BpfMap.ParseCpuList("0,2-3,5"));
        Assert.Equal([0], BpfMap.ParseCpuList("0"));
    }
}
