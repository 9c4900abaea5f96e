using SharpBpf.Maps;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe partial class RingBufferMapTests
{
    private static RingBufferMap Ring(uint size = 4096) => (RingBufferMap)Create(MapType.Ringbuf, 0, 0, size);

    private static byte* ReserveFilled(RingBufferMap ring, int size, byte fill)
    {
        var p = ring.Reserve((ulong)size, 0);
        Assert.True(p != null);
        new Span<byte>(p, size).Fill(fill);
        return p;
    }

    [Fact]
    public void RecordsAreReadInReservationOrderAndDiscardsAreSkipped()
    {
        using var ring = Ring();
        var a = ReserveFilled(ring, 10, 0xaa);
        var b = ReserveFilled(ring, 3, 0xbb);
        var c = ReserveFilled(ring, 5, 0xcc);
        ring.Submit(b, 0);
        Assert.False(ring.TryRead(out _)); // a is still being written: b waits behind it
        ring.Discard(a, 0);
        Assert.True(ring.TryRead(out var first));
        Assert.Equal(Enumerable.Repeat((byte)0xbb, 3), first);
        Assert.False(ring.TryRead(out _));
        ring.Submit(c, RingBufferMap.NoWakeup);
        Assert.True(ring.TryRead(out var second));
        Assert.Equal(Enumerable.Repeat((byte)0xcc, 5), second);
        Assert.Equal(0ul, ring.Query(RingBufferMap.QueryAvailableData));
        // 10, 3 and 5 bytes each take a header and padding to 8: 24 + 16 + 16.
        Assert.Equal(56ul, ring.Query(RingBufferMap.QueryProducerPosition));
        Assert.Equal(56ul, ring.Query(RingBufferMap.QueryConsumerPosition));
        Assert.Equal(4096ul, ring.Query(RingBufferMap.QueryRingSize));
        Assert.Equal(0ul, ring.Query(99));
    }

    [Fact]
    public void FullRingRefusesAndWrapsAroundOnceConsumed()
    {
        using var ring = Ring();
        // Each 1000-byte record takes 1008 bytes; producer - consumer must stay below 4096: 4 fit (4032).
        var held = new List<nint>();
        for (var i = 0; i < 4; i++)
            held.Add((nint)ReserveFilled(ring, 1000, (byte)i));
        Assert.True(ring.Reserve(1000, 0) == null);
        Assert.True(ring.Reserve(64, 0) == null); // 4032 + 72 would reach 4096
        foreach (var p in held)
            ring.Submit((byte*)p, 0);
        Assert.Equal(-Errno.EAGAIN, Output(ring, new byte[1000]));
        for (var i = 0; i < 2; i++)
        {
            Assert.True(ring.TryRead(out var r));
            Assert.Equal((byte)i, r[0]);
        }
        // Now a record straddles the end of the ring: it must come back intact.
        var payload = Enumerable.Range(0, 1500).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(0, Output(ring, payload));
        for (var i = 2; i < 4; i++)
        {
            Assert.True(ring.TryRead(out var r));
            Assert.Equal((byte)i, r[999]);
        }
        Assert.True(ring.TryRead(out var wrapped));
        Assert.Equal(payload, wrapped);
        Assert.True(ring.Query(RingBufferMap.QueryProducerPosition) > 4096);
    }

    [Fact]
    public void ManyWrapsKeepEveryRecordIntact()
    {
        using var ring = Ring();
        var random = new Random(7);
        for (var i = 0; i < 2000; i++)
        {
            var data = new byte[random.Next(0, 700)];
            random.NextBytes(data);
            Assert.Equal(0, Output(ring, data));
            Assert.True(ring.TryRead(out var back));
            Assert.Equal(data, back);
        }
    }

    [Fact]
    public void BadArgumentsAndUnsupportedOperations()
    {
        using var ring = Ring();
        Assert.True(ring.Reserve(8, 1) == null);
        Assert.True(ring.Reserve(4096, 0) == null);
        Assert.True(ring.Reserve(1ul << 40, 0) == null);
        var data = stackalloc byte[4];
        Assert.Equal(-Errno.EINVAL, ring.Output(data, 4, 4));
        Assert.Equal(Errno.ENOTSUPP, ThrowsErrno(() => ring.TryLookup([], [])));
        Assert.Equal(-Errno.ENOTSUPP, ProgUpdate(ring, [], []));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Ringbuf, 0, 0, 4096 * 3)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Ringbuf, 0, 0, 1024)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Ringbuf, 4, 0, 4096)));
        // Committing a pointer that is not a live sample does nothing.
        var p = ReserveFilled(ring, 8, 1);
        ring.Submit(p, 0);
        ring.Submit(p, 0);
        ring.Discard(p + 1, 0);
        Assert.True(ring.TryRead(out _));
        Assert.False(ring.TryRead(out _));
    }

    private static int Output(RingBufferMap ring, byte[] data)
    {
        fixed (byte* p = data)
            return ring.Output(p, (ulong)data.Length, 0);
    }
}

public partial class RingBufferMapTests
{
    [Fact]
    public async Task AsyncReaderGetsRecordsFromConcurrentProducers()
    {
        using var ring = Ring(1 << 16);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(30));
        var producers = Enumerable.Range(0, 3).Select(t => new Thread(() =>
        {
            for (var i = 0; i < 500; i++)
            {
                var record = BitConverter.GetBytes(t * 1000 + i);
                while (OutputSafe(ring, record) != 0)
                    Thread.Yield();
            }
        })).ToList();
        producers.ForEach(p => p.Start());
        var seen = new HashSet<int>();
        await foreach (var record in ring.ReadAllAsync(cts.Token))
        {
            Assert.True(seen.Add(BitConverter.ToInt32(record.Span)));
            if (seen.Count == 1500)
                break;
        }
        producers.ForEach(p => p.Join());
        Assert.Equal(1500, seen.Count);
        for (var t = 0; t < 3; t++)
            Assert.Contains(t * 1000 + 499, seen);
    }

    private static unsafe int OutputSafe(RingBufferMap ring, byte[] data) => Output(ring, data);
}
