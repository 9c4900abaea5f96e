using SharpBpf.Maps;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe class QueueStackMapTests
{
    private static int Push(ManagedMap map, uint v, ulong flags = 0) => map.PushFromProgram((byte*)&v, flags);

    private static (int Status, uint Value) Pop(ManagedMap map)
    {
        uint v = 0;
        var status = map.PopFromProgram((byte*)&v);
        return (status, v);
    }

    private static (int Status, uint Value) Peek(ManagedMap map)
    {
        uint v = 0;
        var status = map.PeekFromProgram((byte*)&v);
        return (status, v);
    }

    [Fact]
    public void QueueIsFifoAndOverwritesTheOldestWithExist()
    {
        using var map = Create(MapType.Queue, 0, 4, 3);
        Assert.Equal((-Errno.ENOENT, 0u), Pop(map));
        Assert.Equal(0, Push(map, 1));
        Assert.Equal(0, Push(map, 2));
        Assert.Equal(0, Push(map, 3));
        Assert.Equal(-Errno.E2BIG, Push(map, 4));
        Assert.Equal(-Errno.EINVAL, Push(map, 4, 1)); // NOEXIST is not a push flag
        Assert.Equal(-Errno.EINVAL, Push(map, 4, 4));
        Assert.Equal(0, Push(map, 4, 2)); // BPF_EXIST: drop 1
        Assert.Equal((0, 2u), Peek(map));
        Assert.Equal((0, 2u), Pop(map));
        Assert.Equal((0, 3u), Pop(map));
        Assert.Equal((0, 4u), Pop(map));
        Assert.Equal((-Errno.ENOENT, 0u), Peek(map));
    }

    [Fact]
    public void StackIsLifoAndOverwritesTheOldestWithExist()
    {
        using var map = Create(MapType.Stack, 0, 4, 3);
        Push(map, 1);
        Push(map, 2);
        Push(map, 3);
        Assert.Equal(0, Push(map, 4, 2)); // drops 1, the oldest
        Assert.Equal((0, 4u), Peek(map));
        Assert.Equal((0, 4u), Pop(map));
        Assert.Equal((0, 3u), Pop(map));
        Assert.Equal((0, 2u), Pop(map));
        Assert.Equal((-Errno.ENOENT, 0u), Pop(map));
    }

    [Fact]
    public void UserFaceIsPeekPushPopAndKeysAreRefused()
    {
        using var map = (QueueStackMap)Create(MapType.Queue, 0, 4, 2);
        map.Push(U32(5));
        map.Update([], U32(6));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Push(U32(7))));
        var value = new byte[4];
        Assert.True(map.TryLookup([], value));
        Assert.Equal(5u, BitConverter.ToUInt32(value));
        Assert.True(map.TryPop(value));
        Assert.Equal(5u, BitConverter.ToUInt32(value));
        Assert.Equal(1, map.Count);
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Delete([])));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.TryGetNextKey([], [])));
        Assert.Empty(map.Keys);
        Assert.True(ProgLookup(map, []) == null);
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Queue, 4, 4, 2)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Stack, 0, 0, 2)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Stack, 0, 4, 0)));
    }

    [Fact]
    public void ConcurrentPushersAndPoppersLoseNothing()
    {
        using var map = Create(MapType.Queue, 0, 4, 64);
        var popped = new System.Collections.Concurrent.ConcurrentBag<uint>();
        var pushers = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            for (uint i = 0; i < 5000; i++)
            {
                var v = (uint)t * 100000 + i;
                while (Push(map, v) != 0)
                    Thread.Yield();
            }
        })).ToList();
        var popper = new Thread(() =>
        {
            while (popped.Count < 10000)
            {
                var (status, v) = Pop(map);
                if (status == 0)
                    popped.Add(v);
                else
                    Thread.Yield();
            }
        });
        pushers.ForEach(p => p.Start());
        popper.Start();
        pushers.ForEach(p => p.Join());
        Assert.True(popper.Join(TimeSpan.FromSeconds(30)));
        Assert.Equal(10000, popped.Distinct().Count());
    }
}
