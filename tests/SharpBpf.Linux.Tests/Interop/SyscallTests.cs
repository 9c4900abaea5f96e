using SharpBpf.Linux.Interop;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Interop;

public unsafe class SyscallTests
{
    private sealed class RefusingSyscalls(int errno) : IBpfSyscalls
    {
        public List<BpfCommand> Commands { get; } = [];
        public int Closed { get; private set; }

        public int Bpf(BpfCommand command, void* attr, uint size)
        {
            Commands.Add(command);
            return -errno;
        }

        public int Close(int fd)
        {
            Closed++;
            return 0;
        }
    }

    [Fact]
    public void ErrnoBecomesAnExceptionNamingCommandAndErrno()
    {
        var fake = new RefusingSyscalls(Errno.EPERM);
        var bpf = new Bpf(fake);
        var attr = new MapCreateAttr { MapType = 1, KeySize = 4, ValueSize = 4, MaxEntries = 1 };
        var e = Assert.Throws<BpfSyscallException>(() => bpf.MapCreate(ref attr));
        Assert.Equal("BPF_MAP_CREATE: EPERM (operation not permitted)", e.Message);
        Assert.Equal(Errno.EPERM, e.ErrorNumber);
        Assert.Equal([BpfCommand.BPF_MAP_CREATE], fake.Commands);

        var wrapped = e.WithContext("load program 'xdp_filter': map 'stats'");
        Assert.Equal("load program 'xdp_filter': map 'stats': BPF_MAP_CREATE: EPERM (operation not permitted)", wrapped.Message);
        Assert.Equal("BPF_MAP_CREATE", wrapped.Command);
        Assert.Same(e, wrapped.InnerException);
        Assert.IsAssignableFrom<BpfException>(wrapped);
    }

    [Fact]
    public void FdIsClosedThroughTheSyscallsThatMadeIt()
    {
        var fake = new RefusingSyscalls(Errno.EPERM);
        var fd = new Bpf(fake).Adopt(1234);
        Assert.Equal(1234, fd.Value);
        fd.Dispose();
        Assert.Equal(1, fake.Closed);
        Assert.True(fd.IsClosed);
    }

    [Fact]
    public void MapElementsRoundTripThroughTheKernel()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var bpf = Bpf.Default;
        var attr = new MapCreateAttr { MapType = 1, KeySize = 4, ValueSize = 8, MaxEntries = 16, MapName = ObjectName.From("sb_sys_test") };
        using var map = bpf.MapCreate(ref attr);

        uint key = 7;
        ulong value = 0x1122334455667788;
        Assert.Equal(0, bpf.TryMapUpdate(map, &key, &value, BpfConstants.BPF_NOEXIST));
        Assert.Equal(-Errno.EEXIST, bpf.TryMapUpdate(map, &key, &value, BpfConstants.BPF_NOEXIST));
        ulong read = 0;
        Assert.Equal(0, bpf.TryMapLookup(map, &key, &read));
        Assert.Equal(value, read);

        uint next = 0;
        Assert.Equal(0, bpf.TryMapGetNextKey(map, null, &next));
        Assert.Equal(7u, next);
        Assert.Equal(-Errno.ENOENT, bpf.TryMapGetNextKey(map, &next, &next));

        var info = bpf.GetInfo<BpfMapInfo>(map);
        Assert.Equal(1u, info.Type);
        Assert.Equal(8u, info.ValueSize);
        Assert.Equal("sb_sys_test", info.Name.ToString());
        Assert.NotEqual(0u, info.Id);

        // The id is machine-wide: find it by walking the ids, then reopen it by id.
        bool found = false;
        for (uint id = 0; bpf.TryGetNextId(BpfCommand.BPF_MAP_GET_NEXT_ID, id, out id);)
            found |= id == info.Id;
        Assert.True(found);
        using (var again = bpf.GetFdById(BpfCommand.BPF_MAP_GET_FD_BY_ID, info.Id))
            Assert.Equal(info.Id, bpf.GetInfo<BpfMapInfo>(again).Id);

        Assert.Equal(0, bpf.TryMapDelete(map, &key));
        Assert.Equal(-Errno.ENOENT, bpf.TryMapLookup(map, &key, &read));
    }

    [Fact]
    public void PinAndGetGiveTheSameMap()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var bpf = Bpf.Default;
        var attr = new MapCreateAttr { MapType = 2, KeySize = 4, ValueSize = 4, MaxEntries = 1 };
        using var map = bpf.MapCreate(ref attr);
        var path = Path.Combine(fs.Path, "pinned");
        bpf.ObjPin(map, path);
        using var got = bpf.ObjGet(path);
        Assert.Equal(bpf.GetInfo<BpfMapInfo>(map).Id, bpf.GetInfo<BpfMapInfo>(got).Id);
        var e = Assert.Throws<BpfSyscallException>(() => bpf.ObjPin(map, path));
        Assert.Equal(Errno.EEXIST, e.ErrorNumber);
    }
}
