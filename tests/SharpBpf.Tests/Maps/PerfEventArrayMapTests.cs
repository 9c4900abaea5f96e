using SharpBpf.Maps;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe class PerfEventArrayMapTests
{
    private static int Output(PerfEventArrayMap map, byte[] data, ulong flags, int cpu)
    {
        fixed (byte* p = data)
            return map.Output(p, (ulong)data.Length, flags, cpu);
    }

    [Fact]
    public void RecordsGoToTheChosenOrCurrentCpuSlot()
    {
        using var map = (PerfEventArrayMap)Create(MapType.PerfEventArray, 4, 4, 2);
        Assert.Equal(-Errno.ENOENT, Output(map, [1], PerfEventArrayMap.CurrentCpu, 0));
        map.OpenAll();
        Assert.Equal(0, Output(map, [1, 2], PerfEventArrayMap.CurrentCpu, 1));
        Assert.Equal(0, Output(map, [3], 0, 1));
        Assert.Equal(-Errno.E2BIG, Output(map, [4], 2, 0));
        Assert.Equal(-Errno.EINVAL, Output(map, [4], 1ul << 32, 0));
        Assert.True(map.TryRead(out var first));
        Assert.Equal(1, first.Cpu);
        Assert.Equal([1, 2], first.Data);
        Assert.True(map.TryRead(out var second));
        Assert.Equal(0, second.Cpu);
        Assert.False(map.TryRead(out _));
        Assert.True(map.Delete<uint>(1));
        Assert.Equal(-Errno.ENOENT, Output(map, [1], 1, 0));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Delete<uint>(2)));
        map.Update<uint, uint>(1, 1234);
        Assert.Equal(0, Output(map, [1], 1, 0));
    }

    [Fact]
    public void AFullBufferDropsAndCountsLostRecords()
    {
        using var map = (PerfEventArrayMap)Create(MapType.PerfEventArray, 4, 4, 1);
        map.Open(0, capacityBytes: 64);
        // Each 20-byte record costs 24 + 8 = 32 bytes: two fit.
        Assert.Equal(0, Output(map, new byte[20], 0, 0));
        Assert.Equal(0, Output(map, new byte[20], 0, 0));
        Assert.Equal(-Errno.ENOSPC, Output(map, new byte[20], 0, 0));
        Assert.Equal(1, map.LostRecords(0));
        Assert.True(map.TryRead(out _));
        Assert.Equal(0, Output(map, new byte[20], 0, 0));
    }
}
