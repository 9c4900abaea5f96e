using System.Text;

namespace SharpBpf.Linux.Interop;

/// <summary>
/// Typed bpf(2) commands over an <see cref="IBpfSyscalls"/>. Methods named Try* return a status (0 or -errno) for
/// hot paths and expected failures (ENOENT on lookup); the others throw <see cref="BpfSyscallException"/>.
/// Every returned descriptor is owned by a <see cref="BpfFd"/> at once, so nothing leaks on a later failure.
/// </summary>
internal sealed unsafe class Bpf(IBpfSyscalls syscalls)
{
    public static Bpf Default { get; } = new(LinuxSyscalls.Instance);

    public IBpfSyscalls Syscalls { get; } = syscalls;

    public int Try<T>(BpfCommand command, ref T attr) where T : unmanaged
    {
        fixed (T* p = &attr)
        {
            // EINTR/EAGAIN on PROG_LOAD happen when a signal lands during verification: retry as libbpf does.
            for (int attempt = 0; ; attempt++)
            {
                int result = Syscalls.Bpf(command, p, (uint)sizeof(T));
                if (result != -Errno.EAGAIN || command != BpfCommand.BPF_PROG_LOAD || attempt >= 5)
                    return result;
            }
        }
    }

    public int Call<T>(BpfCommand command, ref T attr) where T : unmanaged
    {
        int result = Try(command, ref attr);
        return result < 0 ? throw Error(command, -result) : result;
    }

    public BpfFd CallForFd<T>(BpfCommand command, ref T attr) where T : unmanaged =>
        new(Call(command, ref attr), Syscalls);

    public BpfFd Adopt(int fd) => new(fd, Syscalls);

    public static BpfSyscallException Error(BpfCommand command, int errno) => new(command.ToString(), errno);

    // ---- maps ----

    public BpfFd MapCreate(ref MapCreateAttr attr) => CallForFd(BpfCommand.BPF_MAP_CREATE, ref attr);

    public int TryMapElem(BpfCommand command, BpfFd map, void* key, void* value, ulong flags)
    {
        using var lease = map.Use();
        var attr = new MapElemAttr { MapFd = lease.Fd, Key = (ulong)key, Value = (ulong)value, Flags = flags };
        return Try(command, ref attr);
    }

    public int TryMapLookup(BpfFd map, void* key, void* value, ulong flags = 0) =>
        TryMapElem(BpfCommand.BPF_MAP_LOOKUP_ELEM, map, key, value, flags);

    public int TryMapUpdate(BpfFd map, void* key, void* value, ulong flags) =>
        TryMapElem(BpfCommand.BPF_MAP_UPDATE_ELEM, map, key, value, flags);

    public int TryMapDelete(BpfFd map, void* key) =>
        TryMapElem(BpfCommand.BPF_MAP_DELETE_ELEM, map, key, null, 0);

    /// <summary>The key after <paramref name="key"/>, or the first key when it is null; -ENOENT at the end.</summary>
    public int TryMapGetNextKey(BpfFd map, void* key, void* nextKey) =>
        TryMapElem(BpfCommand.BPF_MAP_GET_NEXT_KEY, map, key, nextKey, 0);

    public void MapFreeze(BpfFd map)
    {
        using var lease = map.Use();
        var attr = new MapElemAttr { MapFd = lease.Fd };
        Call(BpfCommand.BPF_MAP_FREEZE, ref attr);
    }

    /// <summary>One batch command; the attr's map_fd is set here. Returns 0 or -errno (ENOENT marks the last batch).</summary>
    public int TryMapBatch(BpfCommand command, BpfFd map, ref MapBatchAttr attr)
    {
        using var lease = map.Use();
        attr.MapFd = lease.Fd;
        return Try(command, ref attr);
    }

    // ---- programs, BTF, links ----

    public int TryProgLoad(ref ProgLoadAttr attr) => Try(BpfCommand.BPF_PROG_LOAD, ref attr);

    public int TryBtfLoad(ref BtfLoadAttr attr) => Try(BpfCommand.BPF_BTF_LOAD, ref attr);

    public int TryProgTestRun(BpfFd program, ref ProgTestRunAttr attr)
    {
        using var lease = program.Use();
        attr.ProgFd = lease.Fd;
        return Try(BpfCommand.BPF_PROG_TEST_RUN, ref attr);
    }

    public BpfFd LinkCreate(ref LinkCreateAttr attr) => CallForFd(BpfCommand.BPF_LINK_CREATE, ref attr);

    public void LinkUpdate(ref LinkUpdateAttr attr) => Call(BpfCommand.BPF_LINK_UPDATE, ref attr);

    public void LinkDetach(BpfFd link)
    {
        using var lease = link.Use();
        var attr = new LinkDetachAttr { LinkFd = lease.Fd };
        Call(BpfCommand.BPF_LINK_DETACH, ref attr);
    }

    // ---- pinning ----

    public void ObjPin(BpfFd fd, string path)
    {
        using var lease = fd.Use();
        fixed (byte* p = NulTerminated(path))
        {
            var attr = new ObjAttr { PathName = (ulong)p, BpfFd = lease.Fd };
            Call(BpfCommand.BPF_OBJ_PIN, ref attr);
        }
    }

    public int TryObjGet(string path, uint fileFlags, out BpfFd? fd)
    {
        fixed (byte* p = NulTerminated(path))
        {
            var attr = new ObjAttr { PathName = (ulong)p, FileFlags = fileFlags };
            int result = Try(BpfCommand.BPF_OBJ_GET, ref attr);
            fd = result >= 0 ? Adopt(result) : null;
            return result < 0 ? result : 0;
        }
    }

    public BpfFd ObjGet(string path, uint fileFlags = 0)
    {
        int result = TryObjGet(path, fileFlags, out var fd);
        return result < 0 ? throw Error(BpfCommand.BPF_OBJ_GET, -result) : fd!;
    }

    // ---- ids and info ----

    /// <summary>The next id after <paramref name="start"/> for a *_GET_NEXT_ID command, or false at the end.</summary>
    public bool TryGetNextId(BpfCommand command, uint start, out uint next)
    {
        var attr = new GetIdAttr { Id = start };
        int result = Try(command, ref attr);
        if (result == -Errno.ENOENT)
        {
            next = 0;
            return false;
        }
        if (result < 0)
            throw Error(command, -result);
        next = attr.NextId;
        return true;
    }

    /// <summary>An fd for an object id (*_GET_FD_BY_ID); -ENOENT when the object went away meanwhile.</summary>
    public int TryGetFdById(BpfCommand command, uint id, out BpfFd? fd)
    {
        var attr = new GetIdAttr { Id = id };
        int result = Try(command, ref attr);
        fd = result >= 0 ? Adopt(result) : null;
        return result < 0 ? result : 0;
    }

    public BpfFd GetFdById(BpfCommand command, uint id)
    {
        int result = TryGetFdById(command, id, out var fd);
        return result < 0 ? throw Error(command, -result) : fd!;
    }

    /// <summary>BPF_OBJ_GET_INFO_BY_FD into <paramref name="info"/> (which may carry pointers to extra arrays).</summary>
    public void GetInfo<T>(BpfFd fd, ref T info) where T : unmanaged
    {
        using var lease = fd.Use();
        fixed (T* p = &info)
        {
            var attr = new InfoByFdAttr { BpfFd = lease.Fd, InfoLen = (uint)sizeof(T), Info = (ulong)p };
            Call(BpfCommand.BPF_OBJ_GET_INFO_BY_FD, ref attr);
        }
    }

    public T GetInfo<T>(BpfFd fd) where T : unmanaged
    {
        var info = default(T);
        GetInfo(fd, ref info);
        return info;
    }

    public static byte[] NulTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
