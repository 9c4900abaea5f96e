using SharpBpf.Maps;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe class HashMapTests
{
    [Fact]
    public void InsertLookupDeleteWithTheKernelsErrnos()
    {
        using var map = Create(MapType.Hash, 4, 8, 2);
        Assert.False(map.TryLookup<uint, ulong>(1, out _));
        Assert.Equal(Errno.ENOENT, ThrowsErrno(() => map.Update<uint, ulong>(1, 10, MapUpdateFlags.Exist)));
        map.Update<uint, ulong>(1, 10, MapUpdateFlags.NoExist);
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, ulong>(1, 11, MapUpdateFlags.NoExist)));
        map.Update<uint, ulong>(1, 12, MapUpdateFlags.Exist);
        Assert.Equal(12ul, map.Lookup<uint, ulong>(1));
        map.Update<uint, ulong>(2, 20);
        // Full: a new key is E2BIG, but replacing an existing one still works.
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Update<uint, ulong>(3, 30)));
        Assert.Equal(-Errno.E2BIG, ProgUpdate(map, U32(3), U64(30)));
        map.Update<uint, ulong>(2, 21);
        // EEXIST is checked before fullness, as in the kernel.
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, ulong>(2, 1, MapUpdateFlags.NoExist)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update<uint, ulong>(2, 1, (MapUpdateFlags)3)));
        Assert.True(map.Delete<uint>(1));
        Assert.False(map.Delete<uint>(1));
        Assert.Equal(-Errno.ENOENT, ProgDelete(map, U32(1)));
        Assert.Equal(0, ProgUpdate(map, U32(3), U64(30)));
        Assert.Equal(30ul, ProgLookupU64(map, U32(3)));
    }

    [Fact]
    public void AReplacedOrDeletedValueStaysReadableUntilReclaim()
    {
        using var map = Create(MapType.Hash, 4, 8, 4);
        var hash = (HashMap)map;
        map.Update<uint, ulong>(7, 1);
        var held = ProgLookup(map, U32(7));
        map.Update<uint, ulong>(7, 2); // replacement: a new element, the old one retired
        Assert.Equal(1ul, *(ulong*)held);
        Assert.Equal(2ul, ProgLookupU64(map, U32(7)));
        var held2 = ProgLookup(map, U32(7));
        Assert.True(map.Delete<uint>(7));
        Assert.Equal(2ul, *(ulong*)held2);
        Assert.Equal(2, hash.RetiredCount);
        // Churn without Reclaim never hands out retired memory.
        for (uint i = 0; i < 100; i++)
        {
            map.Update<uint, ulong>(i % 4, i);
            Assert.True(ProgLookup(map, U32(i % 4)) != held && ProgLookup(map, U32(i % 4)) != held2);
        }
        Assert.Equal(2ul, *(ulong*)held2);
        map.Reclaim();
        Assert.Equal(0, hash.RetiredCount);
    }

    [Fact]
    public void IterationVisitsEveryKeyOnceAndRestartsWhenTheKeyIsGone()
    {
        using var map = Create(MapType.Hash, 8, 4, 1000);
        for (ulong i = 0; i < 500; i++)
            map.Update(i * 7919, (uint)i);
        var keys = map.Keys.Select(k => BitConverter.ToUInt64(k)).ToList();
        Assert.Equal(500, keys.Count);
        Assert.Equal(Enumerable.Range(0, 500).Select(i => (ulong)i * 7919).Order(), keys.Order());
        var first = new byte[8];
        Assert.True(map.TryGetNextKey([], first));
        var again = new byte[8];
        Assert.True(map.TryGetNextKey(U64(123456789), again)); // absent key: the first key
        Assert.Equal(first, again);
        var entries = map.Entries.ToDictionary(e => BitConverter.ToUInt64(e.Key), e => BitConverter.ToUInt32(e.Value));
        Assert.Equal(42u, entries[42 * 7919]);
    }

    [Fact]
    public void SpecChecks()
    {
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Hash, 0, 4, 1)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Hash, 4, 0, 1)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Hash, 4, 4, 0)));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => Create(MapType.Hash, 1 << 22, 4, 1)));
        using var bigKey = Create(MapType.Hash, 513, 4, 1); // the kernel no longer bounds keys by the stack size
        Assert.Equal(Errno.ENOTSUPP, ThrowsErrno(() => Create(MapType.LruHash, 4, 4, 1, flags: 1)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Hash, 4, 4, 1, flags: 2)));
        using var ok = Create(MapType.Hash, 4, 4, 1, flags: 1 | 64);
    }

    [Fact]
    public void PerCpuHashUpdatesOneCpuFromProgramsAndZeroesTheOthers()
    {
        using var map = Create(MapType.PercpuHash, 4, 4, 4);
        var cpus = ManagedMap.PossibleCpus;
        Assert.Equal(0, ProgUpdate(map, U32(1), U32(5), 0, cpus - 1));
        var values = map.LookupPerCpu<uint, uint>(1)!;
        Assert.Equal(5u, values[cpus - 1]);
        Assert.All(values.Take(cpus - 1), v => Assert.Equal(0u, v));
        var p = ProgLookup(map, U32(1), cpus - 1);
        Assert.Equal(0, ProgUpdate(map, U32(1), U32(6), 0, cpus - 1)); // in place
        Assert.Equal(6u, *(uint*)p);
        map.UpdatePerCpu<uint, uint>(2, Enumerable.Range(0, cpus).Select(i => (uint)i * 3).ToArray());
        Assert.Equal((uint)(cpus - 1) * 3, *(uint*)ProgLookup(map, U32(2), cpus - 1));
        Assert.True(ProgLookup(map, U32(2), cpus) == null);
    }

    [Fact]
    public void LruEvictsTheLeastRecentlyUsedInsteadOfRefusing()
    {
        using var map = Create(MapType.LruHash, 4, 8, 4);
        for (uint i = 0; i < 4; i++)
            map.Update<uint, ulong>(i, i);
        // Programs touch 0 and 1; 2 is the oldest untouched element.
        Assert.True(ProgLookup(map, U32(0)) != null);
        Assert.True(ProgLookup(map, U32(1)) != null);
        map.Update<uint, ulong>(10, 10);
        Assert.False(map.TryLookup<uint, ulong>(2, out _));
        Assert.True(map.TryLookup<uint, ulong>(0, out _));
        Assert.True(map.TryLookup<uint, ulong>(1, out _));
        Assert.True(map.TryLookup<uint, ulong>(3, out _));
        Assert.Equal(4, map.Keys.Count());
        map.Update<uint, ulong>(11, 11, MapUpdateFlags.NoExist);
        Assert.False(map.TryLookup<uint, ulong>(3, out _));
        Assert.Equal(4, map.Keys.Count());
        for (uint i = 100; i < 200; i++)
            Assert.Equal(0, ProgUpdate(map, U32(i), U64(i)));
        Assert.Equal(4, map.Keys.Count());
        Assert.Equal(199ul, map.Lookup<uint, ulong>(199));
    }

    [Fact]
    public void LruPerCpuHashEvictsToo()
    {
        using var map = Create(MapType.LruPercpuHash, 4, 8, 2);
        Assert.True(map.IsPerCpu);
        for (uint i = 0; i < 10; i++)
            Assert.Equal(0, ProgUpdate(map, U32(i), U64(i), 0, 0));
        Assert.Equal(2, map.Keys.Count());
        Assert.Equal(9ul, map.LookupPerCpu<uint, ulong>(9)![0]);
    }

    [Fact]
    public void ConcurrentWritersAndLockFreeReadersAgree()
    {
        using var map = Create(MapType.Hash, 4, 8, 4096);
        var stop = 0;
        var readerErrors = 0;
        var reader = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                for (uint k = 0; k < 4000; k += 37)
                {
                    var p = ProgLookup(map, U32(k));
                    // A value is always the key times 3 plus a small version: never garbage.
                    if (p != null && *(ulong*)p % 1_000_000 != k)
                        Interlocked.Increment(ref readerErrors);
                }
            }
        });
        reader.Start();
        Parallel.For(0, 4, t =>
        {
            for (var round = 0; round < 3; round++)
            {
                for (var k = (uint)t; k < 4000; k += 4)
                    map.Update<uint, ulong>(k, (ulong)round * 1_000_000 + k);
                for (var k = (uint)t; k < 4000; k += 8)
                    Assert.True(map.Delete<uint>(k));
            }
        });
        Volatile.Write(ref stop, 1);
        reader.Join();
        Assert.Equal(0, readerErrors);
        // Each thread ends with its odd-step keys present (every other key of its stripe) holding round 2.
        var keys = map.Keys.Select(k => BitConverter.ToUInt32(k)).Order().ToArray();
        var expected = Enumerable.Range(0, 4000).Select(i => (uint)i).Where(k => k % 8 >= 4).ToArray();
        Assert.Equal(expected, keys);
        Assert.All(expected, k => Assert.Equal(2_000_000ul + k, map.Lookup<uint, ulong>(k)));
    }

    [Fact]
    public void ConcurrentNoExistInsertsOfTheSameKeyHaveOneWinner()
    {
        using var map = Create(MapType.Hash, 4, 4, 16);
        var wins = 0;
        Parallel.For(0, 8, t =>
        {
            try
            {
                map.Update<uint, uint>(1, (uint)t, MapUpdateFlags.NoExist);
                Interlocked.Increment(ref wins);
            }
            catch (MapException e) when (e.ErrorNumber == Errno.EEXIST)
            {
            }
        });
        Assert.Equal(1, wins);
    }

    [Fact]
    public void BatchesUpdateAndTakeOut()
    {
        using var map = Create(MapType.Hash, 4, 4, 16);
        var keys = Enumerable.Range(0, 10).SelectMany(i => U32((uint)i)).ToArray();
        var values = Enumerable.Range(0, 10).SelectMany(i => U32((uint)i + 100)).ToArray();
        Assert.Equal(10, map.UpdateBatch(keys, values));
        var outKeys = new byte[4 * 16];
        var outValues = new byte[4 * 16];
        Assert.Equal(10, map.LookupAndDeleteBatch(outKeys, outValues));
        Assert.Empty(map.Keys);
        for (var i = 0; i < 10; i++)
            Assert.Equal(BitConverter.ToUInt32(outKeys, i * 4) + 100, BitConverter.ToUInt32(outValues, i * 4));
        map.UpdateBatch(keys, values);
        var e = Assert.Throws<MapBatchException>(() => map.DeleteBatch([.. U32(1), .. U32(1)]));
        Assert.Equal(Errno.ENOENT, e.ErrorNumber);
        Assert.Equal(1, e.Completed);
    }

    [Fact]
    public void ProgramHandlesAndIdsFindTheMapUntilDisposed()
    {
        var map = Create(MapType.Hash, 4, 4, 1);
        Assert.Same(map, ManagedMap.FromProgramHandle(map.ProgramHandle));
        Assert.Same(map, ManagedMap.FromId(map.Id));
        var id = map.Id;
        map.Dispose();
        Assert.Null(ManagedMap.FromId(id));
        Assert.Null(ManagedMap.FromProgramHandle((void*)0x1234));
    }
}

public unsafe class ForEachTests
{
    [Fact]
    public void HashVisitsEveryElementAndSurvivesDeletesFromTheVisitor()
    {
        using var map = M.Create(SharpBpf.Platform.MapType.Hash, 4, 8, 64);
        for (uint i = 0; i < 50; i++)
            map.Update(i, (ulong)i * 2);
        var seen = new List<uint>();
        var visited = map.ForEachForProgram((k, v) =>
        {
            seen.Add(*(uint*)k);
            Assert.Equal(*(uint*)k * 2ul, *(ulong*)v);
            *(ulong*)v += 1; // programs may write values
            M.ProgDelete(map, BitConverter.GetBytes(*(uint*)k));
            return true;
        }, 0);
        Assert.Equal(50, visited);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (uint)i), seen.Order());
        Assert.Empty(map.Keys);
    }

    [Fact]
    public void ArrayStopsWhenAskedAndCountsTheStoppingElement()
    {
        using var map = M.Create(SharpBpf.Platform.MapType.PercpuArray, 4, 4, 10);
        M.ProgUpdate(map, M.U32(3), M.U32(33), 0, 0);
        uint found = 0;
        var visited = map.ForEachForProgram((k, v) =>
        {
            if (*(uint*)v == 33)
            {
                found = *(uint*)k;
                return false;
            }
            return true;
        }, 0);
        Assert.Equal(4, visited);
        Assert.Equal(3u, found);
        using var lpm = M.Create(SharpBpf.Platform.MapType.LpmTrie, 8, 4, 10, flags: 1);
        Assert.Equal(-Errno.EINVAL, lpm.ForEachForProgram((_, _) => true, 0));
    }
}

public unsafe class ProgramRunsTests
{
    [Fact]
    public void MemoryRetiredDuringARunIsHeldUntilTheRunEnds()
    {
        using var map = M.Create(SharpBpf.Platform.MapType.Hash, 4, 8, 4);
        var hash = (HashMap)map;
        map.Update<uint, ulong>(1, 10);
        map.Update<uint, ulong>(1, 11); // retired before any run: reusable at once
        var run = ProgramRuns.Enter();
        var held = M.ProgLookup(map, M.U32(1));
        map.Update<uint, ulong>(1, 12); // retired during the run that holds `held`
        map.ReclaimUnreachable();
        Assert.Equal(1, hash.RetiredCount);
        for (uint i = 0; i < 50; i++)
            map.Update<uint, ulong>(2 + i % 3, i); // churn: must not reuse the held element
        Assert.Equal(11ul, *(ulong*)held);
        ProgramRuns.Exit(run);
        map.ReclaimUnreachable();
        Assert.Equal(0, hash.RetiredCount);
    }

    [Fact]
    public void ConcurrentRunsAndReclaimNeverHandAReaderReusedMemory()
    {
        using var map = M.Create(SharpBpf.Platform.MapType.Hash, 4, 8, 16);
        for (uint k = 0; k < 16; k++)
            map.Update<uint, ulong>(k, k);
        var stop = 0;
        var corrupt = 0;
        var readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                using var run = ProgramRuns.Enter();
                for (uint k = 0; k < 16; k++)
                {
                    var p = M.ProgLookup(map, M.U32(k));
                    if (p == null)
                        continue;
                    var first = *(ulong*)p;
                    Thread.SpinWait(20);
                    // Values are key + 16 * n and elements are replaced, never written in place: a held
                    // element must keep its value for the whole run.
                    if (*(ulong*)p != first || first % 16 != k)
                        Interlocked.Increment(ref corrupt);
                }
            }
        })).ToList();
        readers.ForEach(r => r.Start());
        for (var round = 1; round < 3000; round++)
        {
            var key = (uint)(round % 16);
            map.Update<uint, ulong>(key, key + 16ul * (ulong)round);
            if (round % 10 == 0)
                map.ReclaimUnreachable();
        }
        Volatile.Write(ref stop, 1);
        readers.ForEach(r => r.Join());
        Assert.Equal(0, corrupt);
    }
}

public class LruConcurrencyTests
{
    [Fact]
    public void ConcurrentInsertsIntoAFullLruStayWithinMaxEntries()
    {
        using var map = M.Create(SharpBpf.Platform.MapType.LruHash, 4, 8, 100);
        Parallel.For(0, 4, t =>
        {
            for (uint i = 0; i < 5000; i++)
            {
                var key = (uint)t * 100000 + i;
                map.Update(key, (ulong)key);
                // Other threads may already have evicted it; if present, it holds its own value.
                if (map.TryLookup<uint, ulong>(key, out var value))
                    Assert.Equal((ulong)key, value);
            }
        });
        var keys = map.Keys.Select(k => BitConverter.ToUInt32(k)).ToList();
        Assert.Equal(100, keys.Count);
        Assert.All(keys, k => Assert.Equal((ulong)k, map.Lookup<uint, ulong>(k)));
    }
}
