using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe class SpecialMapTests
{
    [Fact]
    public void ProgramArraySlotsHoldProgramHandles()
    {
        using var map = (ProgramArrayMap)Create(MapType.ProgArray, 4, 4, 4);
        var program = new object();
        map.SetProgram(1, program, id: 77);
        Assert.Same(program, map.GetProgram(1));
        Assert.Null(map.GetProgram(0));
        Assert.Null(map.GetProgram(100));
        Assert.Equal(77u, map.Lookup<uint, uint>(1));
        Assert.False(map.TryLookup<uint, uint>(0, out _));
        // Without a resolver an id is stored as is, and program lookups see it (VMs that tail-call by id).
        map.Update<uint, uint>(3, 5);
        Assert.Null(map.GetProgram(3));
        Assert.Equal(5u, *(uint*)ProgLookup(map, U32(3)));
        Assert.Equal(77u, *(uint*)ProgLookup(map, U32(1)));
        Assert.True(map.Delete<uint>(3));
        map.ProgramResolver = _ => null;
        Assert.Equal(Errno.EBADF, ThrowsErrno(() => map.Update<uint, uint>(2, 5)));
        var other = new object();
        map.ProgramResolver = id => id == 5 ? other : null;
        map.Update<uint, uint>(2, 5);
        Assert.Same(other, map.GetProgram(2));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update<uint, uint>(2, 5, MapUpdateFlags.Exist)));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Update<uint, uint>(4, 5)));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Delete<uint>(4)));
        Assert.True(map.Delete<uint>(2));
        Assert.False(map.Delete<uint>(2));
        Assert.True(ProgLookup(map, U32(2)) == null);
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.ProgArray, 4, 8, 4)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.ProgArray, 4, 4, 4, flags: 0x80)));
    }

    [Fact]
    public void DevMapTargetsDevicesWithArraySemantics()
    {
        using var map = Create(MapType.Devmap, 4, 8, 4);
        var dev = (IRedirectMap)map;
        Assert.False(dev.TryGetTarget(0, out _));
        map.Update<uint, ulong>(0, 7);
        Assert.True(dev.TryGetTarget(0, out var target));
        Assert.Equal(new RedirectTarget(RedirectTargetKind.Device, IfIndex: 7), target);
        Assert.Equal(7u, *(uint*)ProgLookup(map, U32(0)));
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, ulong>(1, 7, MapUpdateFlags.NoExist)));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Update<uint, ulong>(4, 7)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update<uint, ulong>(1, 5ul << 32))); // no device, a program
        map.Update<uint, ulong>(0, 0); // ifindex 0 empties
        Assert.False(dev.TryGetTarget(0, out _));
        Assert.True(map.Delete<uint>(3));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Delete<uint>(4)));
        Assert.Equal(4, map.Keys.Count());
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.Devmap, 4, 6, 4)));
    }

    [Fact]
    public void DevMapHashHasHashSemantics()
    {
        using var map = Create(MapType.DevmapHash, 4, 4, 2);
        var dev = (IRedirectMap)map;
        map.Update<uint, uint>(10, 10);
        map.Update<uint, uint>(20, 20);
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Update<uint, uint>(30, 30)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update<uint, uint>(10, 0)));
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, uint>(10, 11, MapUpdateFlags.NoExist)));
        Assert.True(dev.TryGetTarget(20, out var target));
        Assert.Equal(20u, target.IfIndex);
        Assert.True(map.Delete<uint>(20));
        Assert.False(map.Delete<uint>(20));
        Assert.False(dev.TryGetTarget(20, out _));
    }

    [Fact]
    public void CpuMapTargetsPossibleCpus()
    {
        using var map = Create(MapType.Cpumap, 4, 4, 64);
        var cpus = (IRedirectMap)map;
        map.Update<uint, uint>(0, 192);
        Assert.True(cpus.TryGetTarget(0, out var target));
        Assert.Equal(new RedirectTarget(RedirectTargetKind.Cpu, Cpu: 0, QueueSize: 192), target);
        if (ManagedMap.PossibleCpus < 64)
            Assert.Equal(Errno.ENODEV, ThrowsErrno(() => map.Update<uint, uint>(63, 192)));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => map.Update<uint, uint>(64, 192)));
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, uint>(0, 1, MapUpdateFlags.NoExist)));
        map.Update<uint, uint>(0, 0);
        Assert.False(cpus.TryGetTarget(0, out _));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => Create(MapType.Cpumap, 4, 4, 100000)));
    }

    [Fact]
    public void XskMapTargetsSocketsByQueue()
    {
        using var map = (XskMap)Create(MapType.Xskmap, 4, 4, 4);
        var socket = new object();
        map.SetSocket(2, 99, socket);
        Assert.True(map.TryGetTarget(2, out var target));
        Assert.Equal(new RedirectTarget(RedirectTargetKind.Socket, QueueId: 2, SocketId: 99), target);
        Assert.Same(socket, map.GetSocket(2));
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update<uint, uint>(2, 5, MapUpdateFlags.NoExist)));
        Assert.Equal(Errno.ENOENT, ThrowsErrno(() => map.Update<uint, uint>(1, 5, MapUpdateFlags.Exist)));
        Assert.Equal(Errno.EOPNOTSUPP, ThrowsErrno(() => map.TryLookup<uint, uint>(2, out _)));
        Assert.True(ProgLookup(map, U32(2)) != null);
        Assert.True(map.Delete<uint>(2));
        Assert.Null(map.GetSocket(2));
        Assert.False(map.TryGetTarget(2, out _));
    }

    [Fact]
    public void ArrayOfMapsHandsProgramsInnerMapHandles()
    {
        var template = new MapSpec { Name = "inner", Type = MapType.Hash, KeySize = 4, ValueSize = 8, MaxEntries = 16 };
        using var outer = (MapOfMaps)MapFactory.Create(new MapSpec
        {
            Name = "outer", Type = MapType.ArrayOfMaps, KeySize = 4, ValueSize = 4, MaxEntries = 4, InnerMap = template,
        });
        using var inner = MapFactory.Create(template);
        inner.Update<uint, ulong>(1, 42);
        outer.SetInnerMap(3, inner);
        var handle = ProgLookup(outer, U32(3));
        var resolved = ManagedMap.FromProgramHandle(handle);
        Assert.Same(inner, resolved);
        Assert.Equal(42ul, ProgLookupU64(resolved!, U32(1)));
        Assert.Same(inner, outer.GetInnerMap(3));
        Assert.Null(outer.GetInnerMap(0));
        Assert.Equal(inner.Id, outer.Lookup<uint, uint>(3));

        using var wrong = MapFactory.Create(new MapSpec { Name = "wrong", Type = MapType.Hash, KeySize = 4, ValueSize = 4, MaxEntries = 16 });
        var e = Assert.Throws<MapException>(() => outer.SetInnerMap(0, wrong));
        Assert.Equal(Errno.EINVAL, e.ErrorNumber);
        Assert.Contains("wrong", e.Message);
        using var otherSize = MapFactory.Create(Clone(template));
        outer.Update<uint, uint>(0, otherSize.Id); // by id, as user space writes an fd
        Assert.Same(otherSize, outer.GetInnerMap(0));
        Assert.Equal(Errno.EBADF, ThrowsErrno(() => outer.Update<uint, uint>(1, 0xfffffff0)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => outer.SetInnerMap(1, inner, MapUpdateFlags.NoExist)));
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => outer.SetInnerMap(9, inner)));
        Assert.True(outer.Delete<uint>(3));
        Assert.False(outer.Delete<uint>(3));
        Assert.True(ProgLookup(outer, U32(3)) == null);
        Assert.Equal(-Errno.EINVAL, ProgDelete(outer, U32(0)));
    }

    [Fact]
    public void HashOfMapsAndTemplateRules()
    {
        var template = new MapSpec { Name = "inner", Type = MapType.Array, KeySize = 4, ValueSize = 4, MaxEntries = 8, Flags = 0x1000 };
        using var outer = (MapOfMaps)MapFactory.Create(new MapSpec
        {
            Name = "outer", Type = MapType.HashOfMaps, KeySize = 8, ValueSize = 4, MaxEntries = 2, InnerMap = template,
        });
        // BPF_F_INNER_MAP: inner maps may differ in max entries.
        using var small = MapFactory.Create(Clone(template, 2));
        using var big = MapFactory.Create(Clone(template, 100));
        outer.SetInnerMap(U64(1), small);
        outer.SetInnerMap(U64(2), big, MapUpdateFlags.NoExist);
        Assert.Equal(Errno.E2BIG, ThrowsErrno(() => outer.SetInnerMap(U64(3), big)));
        Assert.Same(big, ManagedMap.FromProgramHandle(ProgLookup(outer, U64(2))));
        Assert.Equal(2, outer.Keys.Count());
        Assert.True(outer.Delete(U64(1)));
        Assert.Null(outer.GetInnerMap(U64(1)));

        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => MapFactory.Create(new MapSpec
        {
            Name = "o", Type = MapType.ArrayOfMaps, KeySize = 4, ValueSize = 4, MaxEntries = 1,
        })));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => MapFactory.Create(new MapSpec
        {
            Name = "o", Type = MapType.ArrayOfMaps, KeySize = 4, ValueSize = 4, MaxEntries = 1,
            InnerMap = new MapSpec { Name = "i", Type = MapType.ArrayOfMaps, KeySize = 4, ValueSize = 4, MaxEntries = 1 },
        })));
    }

    private static MapSpec Clone(MapSpec t, uint? max = null) => new()
    {
        Name = t.Name, Type = t.Type, KeySize = t.KeySize, ValueSize = t.ValueSize, MaxEntries = max ?? t.MaxEntries, Flags = t.Flags,
    };

    [Fact]
    public void FactoryRefusesWhatItDoesNotModel()
    {
        Assert.Throws<BpfNotSupportedException>(() => Create(MapType.StackTrace, 4, 8, 4));
        var e = Assert.Throws<MapException>(() => MapFactory.Create(new MapSpec
        {
            Name = "h", Type = MapType.Hash, KeySize = 4, ValueSize = 4, MaxEntries = 1, InitialValue = [1],
        }));
        Assert.Equal(Errno.EINVAL, e.ErrorNumber);
    }
}
