using System.Runtime.InteropServices;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.AfXdp;

/// <summary>One mmap(2) region, unmapped when released (also by the finalizer if a dispose was missed).</summary>
internal sealed unsafe class MappedMemory : SafeHandle
{
    private MappedMemory(void* address, nuint length) : base(IntPtr.Zero, ownsHandle: true)
    {
        SetHandle((IntPtr)address);
        Length = length;
    }

    public nuint Length { get; }

    public byte* Pointer => (byte*)handle;

    public override bool IsInvalid => handle == IntPtr.Zero || handle == (IntPtr)(-1);

    /// <summary>Private anonymous memory (the UMEM), prefaulted.</summary>
    public static MappedMemory Anonymous(nuint length)
    {
        var p = Xsk.mmap(null, length, Xsk.PROT_READ | Xsk.PROT_WRITE, Xsk.MAP_PRIVATE | Xsk.MAP_ANONYMOUS | Xsk.MAP_POPULATE, -1, 0);
        if (p == Xsk.MAP_FAILED)
            throw XskException.From("mmap UMEM", LibC.LastErrno());
        return new MappedMemory(p, length);
    }

    /// <summary>A ring of an AF_XDP socket at its page offset.</summary>
    public static MappedMemory Ring(int fd, nuint length, long pageOffset, string what)
    {
        var p = Xsk.mmap(null, length, Xsk.PROT_READ | Xsk.PROT_WRITE, Xsk.MAP_SHARED | Xsk.MAP_POPULATE, fd, pageOffset);
        if (p == Xsk.MAP_FAILED)
            throw XskException.From($"mmap {what} ring", LibC.LastErrno());
        return new MappedMemory(p, length);
    }

    protected override bool ReleaseHandle() => Xsk.munmap((void*)handle, Length) == 0;
}

/// <summary>An AF_XDP socket call failed; <see cref="Errno"/> says why.</summary>
public sealed class XskException : BpfException
{
    public XskException(string message, int errno) : base(message) => Errno = errno;

    /// <summary>The errno of the failed call.</summary>
    public int Errno { get; }

    // EAFNOSUPPORT (97: no AF_XDP in this kernel), ENOPROTOOPT (92: an option this kernel lacks), EOPNOTSUPP.
    internal static BpfException From(string what, int errno) => errno is SharpBpf.Errno.EOPNOTSUPP or 97 or 92
        ? new BpfNotSupportedException($"AF_XDP ({what})", detail: SharpBpf.Errno.Name(errno))
        : new XskException($"AF_XDP: {what} failed: {SharpBpf.Errno.Name(errno)}", errno);
}
