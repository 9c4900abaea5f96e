using System.Runtime.InteropServices;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// One descriptor of an RX or TX ring (<c>struct xdp_desc</c>, 16 bytes): where a frame's data is in the UMEM and
/// how long it is. In unaligned-chunk mode the top 16 bits of <see cref="Address"/> carry the data's offset within
/// its chunk; <see cref="Umem.DataOffset"/> resolves either form.
/// <code>
///   0        8        12       16
///   | addr   | len    | options|
/// </code>
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct XdpDesc
{
    /// <summary>The frame's address: an offset into the UMEM (with the in-chunk offset in bits 48-63 when unaligned).</summary>
    public ulong Address;
    /// <summary>Length of the packet data in bytes.</summary>
    public uint Length;
    /// <summary>Descriptor options (XDP_PKT_CONTD for multi-buffer frames; 0 here).</summary>
    public uint Options;

    public XdpDesc(ulong address, uint length)
    {
        Address = address;
        Length = length;
        Options = 0;
    }

    public override readonly string ToString() => $"addr 0x{Address:x} len {Length}";
}

/// <summary>How a socket binds to its queue.</summary>
public enum XskBindMode
{
    /// <summary>The kernel's choice: zero-copy where the driver supports it, copy otherwise.</summary>
    Auto,
    /// <summary>Copy mode (XDP_COPY): works on every driver, frames are copied into the UMEM.</summary>
    Copy,
    /// <summary>Zero-copy (XDP_ZEROCOPY); falls back to copy with a <see cref="XskSocket.Notice"/> where the driver lacks it.</summary>
    ZeroCopy,
}

/// <summary>Options of a UMEM: the packet buffer area shared by the kernel and user space.</summary>
public sealed record UmemOptions
{
    /// <summary>Number of frames (chunks).</summary>
    public int FrameCount { get; init; } = 4096;
    /// <summary>Size of one chunk: a power of two from 2048 to the page size in aligned mode; any size from 2048 in unaligned mode.</summary>
    public int FrameSize { get; init; } = 4096;
    /// <summary>Bytes the kernel leaves free at the start of each chunk, before XDP's own 256 bytes of headroom.</summary>
    public int Headroom { get; init; }
    /// <summary>Unaligned chunks (XDP_UMEM_UNALIGNED_CHUNK_FLAG): frames may start anywhere, not only at chunk boundaries.</summary>
    public bool Unaligned { get; init; }
}

/// <summary>Options of an AF_XDP socket. Ring sizes are powers of two.</summary>
public sealed record XskSocketOptions
{
    public int RxRingSize { get; init; } = 2048;
    public int TxRingSize { get; init; } = 2048;
    /// <summary>Fill ring size (the socket that registers the UMEM, or one sharing it on another queue or device).</summary>
    public int FillRingSize { get; init; } = 2048;
    public int CompletionRingSize { get; init; } = 2048;
    public XskBindMode Mode { get; init; } = XskBindMode.Auto;
    /// <summary>XDP_USE_NEED_WAKEUP: the kernel says when it needs a syscall to make progress, saving syscalls otherwise.</summary>
    public bool NeedWakeup { get; init; } = true;
    /// <summary>Frames taken from the UMEM and placed in the fill ring at creation (default: half the free frames, at most the fill ring size).</summary>
    public int? InitialFillFrames { get; init; }
}

/// <summary>The socket's counters (XDP_STATISTICS).</summary>
public readonly record struct XskStatistics(
    ulong RxDropped, ulong RxInvalidDescriptors, ulong TxInvalidDescriptors, ulong RxRingFull,
    ulong RxFillRingEmpty, ulong TxRingEmpty);
