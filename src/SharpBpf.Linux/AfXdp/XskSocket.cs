using System.Numerics;
using System.Runtime.InteropServices;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.AfXdp;

/// <summary>The AF_XDP socket descriptor, closed when released (closing also removes it from every XSKMAP).</summary>
public sealed class XskHandle : SafeHandle
{
    internal XskHandle(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => (long)handle < 0;

    /// <summary>The descriptor number (for an XSKMAP value); do not close it.</summary>
    public int Value => (int)handle;

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}

/// <summary>
/// An AF_XDP socket bound to one queue of one interface: frames an XDP program redirects into its XSKMAP slot
/// arrive in the RX ring, in UMEM frames taken from the fill ring; frames placed in the TX ring leave through the
/// interface and come back through the completion ring. The hot-path methods (<see cref="Receive"/>,
/// <see cref="Refill(ReadOnlySpan{XdpDesc})"/>, <see cref="Transmit"/>, <see cref="Complete"/>) work on spans and
/// allocate nothing. One thread at a time may use a socket. Dispose closes the socket and unmaps its rings.
/// </summary>
public sealed unsafe class XskSocket : IDisposable
{
    private static readonly TimeSpan s_busyRetry = TimeSpan.FromSeconds(2);
    private readonly XskHandle _handle;
    private readonly XskRing? _rx, _tx;
    private readonly XskRing _fill, _completion;
    private readonly List<MappedMemory> _maps, _borrowed;
    private readonly bool _needWakeup;
    private bool _disposed;

    private XskSocket(XskHandle handle, Umem umem, int ifIndex, uint queueId, XskRing? rx, XskRing? tx, XskRing fill,
        XskRing completion, List<MappedMemory> maps, List<MappedMemory> borrowed, bool needWakeup, bool zeroCopy, bool shared, string? notice)
    {
        _handle = handle;
        Umem = umem;
        IfIndex = ifIndex;
        QueueId = queueId;
        _rx = rx;
        _tx = tx;
        _fill = fill;
        _completion = completion;
        _maps = maps;
        _borrowed = borrowed;
        _needWakeup = needWakeup;
        IsZeroCopy = zeroCopy;
        SharesUmem = shared;
        Notice = notice;
    }

    public Umem Umem { get; }
    public int IfIndex { get; }
    public uint QueueId { get; }
    /// <summary>The socket's descriptor (what an XSKMAP entry holds).</summary>
    public XskHandle Handle => _handle;
    /// <summary>True when bound in zero-copy mode (XDP_OPTIONS_ZEROCOPY).</summary>
    public bool IsZeroCopy { get; }
    /// <summary>True when this socket binds with XDP_SHARED_UMEM to a UMEM another socket registered.</summary>
    public bool SharesUmem { get; }
    /// <summary>What the bind had to settle for, e.g. copy mode where zero-copy was asked; null when nothing.</summary>
    public string? Notice { get; }

    /// <summary>Creates a socket on <paramref name="interfaceName"/>'s queue <paramref name="queueId"/>.</summary>
    public static XskSocket Create(string interfaceName, uint queueId, Umem umem, XskSocketOptions? options = null)
    {
        var iface = Net.NetInterfaces.Find(interfaceName)
            ?? throw new BpfException($"AF_XDP: no interface '{interfaceName}' in this network namespace");
        return Create(iface.Index, queueId, umem, options);
    }

    /// <summary>
    /// Creates a socket on queue <paramref name="queueId"/> of interface <paramref name="ifIndex"/> using
    /// <paramref name="umem"/>: the first socket registers the UMEM and owns its fill and completion rings; a later
    /// one shares it, with rings of its own when it is on another queue or device (the kernel's rule).
    /// </summary>
    public static XskSocket Create(int ifIndex, uint queueId, Umem umem, XskSocketOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(umem);
        ObjectDisposedException.ThrowIf(umem.IsDisposed, umem);
        options ??= new XskSocketOptions();
        foreach (var (name, size) in new[] { ("RX", options.RxRingSize), ("TX", options.TxRingSize), ("fill", options.FillRingSize), ("completion", options.CompletionRingSize) })
            if (size <= 0 || !BitOperations.IsPow2(size))
                throw new ArgumentOutOfRangeException(nameof(options), $"the {name} ring size must be a power of two, not {size}");

        int fd = Xsk.socket(Xsk.AF_XDP, Xsk.SOCK_RAW | Xsk.SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw XskException.From("socket(AF_XDP)", LibC.LastErrno());
        var handle = new XskHandle(fd);
        var maps = new List<MappedMemory>(4);
        var borrowed = new List<MappedMemory>(2);
        try
        {
            var owner = umem.ShareWith(ifIndex, queueId);
            bool sameQueue = owner is not null && owner.IfIndex == ifIndex && owner.QueueId == queueId;
            bool ownRings = owner is null || !sameQueue;
            if (owner is null)
            {
                var reg = umem.Registration();
                SetOption(fd, Xsk.XDP_UMEM_REG, &reg, (uint)sizeof(xdp_umem_reg), "XDP_UMEM_REG");
            }
            if (ownRings)
            {
                uint fillSize = (uint)options.FillRingSize, compSize = (uint)options.CompletionRingSize;
                SetOption(fd, Xsk.XDP_UMEM_FILL_RING, &fillSize, 4, "XDP_UMEM_FILL_RING");
                SetOption(fd, Xsk.XDP_UMEM_COMPLETION_RING, &compSize, 4, "XDP_UMEM_COMPLETION_RING");
            }
            uint rxSize = (uint)options.RxRingSize, txSize = (uint)options.TxRingSize;
            SetOption(fd, Xsk.XDP_RX_RING, &rxSize, 4, "XDP_RX_RING");
            SetOption(fd, Xsk.XDP_TX_RING, &txSize, 4, "XDP_TX_RING");

            xdp_mmap_offsets off;
            uint length = (uint)sizeof(xdp_mmap_offsets);
            if (Xsk.getsockopt(fd, Xsk.SOL_XDP, Xsk.XDP_MMAP_OFFSETS, &off, &length) != 0)
                throw XskException.From("getsockopt XDP_MMAP_OFFSETS", LibC.LastErrno());

            XskRing MapRing(in xdp_ring_offset o, uint size, uint entrySize, long pgoff, string what, bool producer)
            {
                var map = MappedMemory.Ring(fd, (nuint)(o.desc + size * entrySize), pgoff, what);
                maps.Add(map);
                return new XskRing(map, o, size, producer);
            }
            var rx = MapRing(off.rx, rxSize, (uint)sizeof(XdpDesc), Xsk.XDP_PGOFF_RX_RING, "RX", producer: false);
            var tx = MapRing(off.tx, txSize, (uint)sizeof(XdpDesc), Xsk.XDP_PGOFF_TX_RING, "TX", producer: true);
            XskRing fill, completion;
            if (ownRings)
            {
                fill = MapRing(off.fr, (uint)options.FillRingSize, 8, Xsk.XDP_UMEM_PGOFF_FILL_RING, "fill", producer: true);
                completion = MapRing(off.cr, (uint)options.CompletionRingSize, 8, Xsk.XDP_UMEM_PGOFF_COMPLETION_RING, "completion", producer: false);
            }
            else
            {
                // Same queue and device: the kernel uses the owner's fill and completion rings. Hold their
                // mappings so the owner's dispose cannot unmap them under this socket.
                fill = owner!._fill;
                completion = owner._completion;
                bool added = false;
                fill.Map.DangerousAddRef(ref added);
                borrowed.Add(fill.Map);
                added = false;
                completion.Map.DangerousAddRef(ref added);
                borrowed.Add(completion.Map);
            }

            // The fill ring gets frames before bind, so the first frames have somewhere to land.
            if (ownRings)
            {
                int initial = options.InitialFillFrames ?? Math.Min(options.FillRingSize, Math.Max(1, umem.FreeFrames / 2));
                FillFromPool(fill, umem, initial);
            }

            // A sharing socket may carry no other flag: the kernel refuses copy, zero-copy and need-wakeup flags with
            // XDP_SHARED_UMEM (EINVAL) and gives it the owner's mode and need-wakeup setting.
            bool needWakeup = owner?._needWakeup ?? options.NeedWakeup;
            ushort flags = owner is not null ? Xsk.XDP_SHARED_UMEM : needWakeup ? Xsk.XDP_USE_NEED_WAKEUP : (ushort)0;
            string? notice = null;
            ushort modeFlag = options.Mode switch
            {
                XskBindMode.Copy => Xsk.XDP_COPY,
                XskBindMode.ZeroCopy => Xsk.XDP_ZEROCOPY,
                _ => 0,
            };
            if (owner is not null)
                modeFlag = 0;
            int errno = Bind(fd, ifIndex, queueId, (ushort)(flags | modeFlag), owner);
            if (errno == Errno.EOPNOTSUPP && modeFlag == Xsk.XDP_ZEROCOPY)
            {
                notice = $"zero-copy is not supported by the driver of ifindex {ifIndex} queue {queueId} ({Errno.Name(errno)}): bound in copy mode";
                errno = Bind(fd, ifIndex, queueId, (ushort)(flags | Xsk.XDP_COPY), owner);
            }
            if (errno != 0)
                throw XskException.From($"bind to ifindex {ifIndex} queue {queueId}", errno);

            uint xdpOptions = 0;
            length = 4;
            bool zeroCopy = Xsk.getsockopt(fd, Xsk.SOL_XDP, Xsk.XDP_OPTIONS, &xdpOptions, &length) == 0
                && (xdpOptions & Xsk.XDP_OPTIONS_ZEROCOPY) != 0;
            var socket = new XskSocket(handle, umem, ifIndex, queueId, rx, tx, fill, completion, maps, borrowed, needWakeup,
                zeroCopy, owner is not null, notice);
            umem.AddSocket(socket);
            return socket;
        }
        catch
        {
            foreach (var map in maps)
                map.Dispose();
            foreach (var map in borrowed)
                map.DangerousRelease();
            handle.Dispose();
            throw;
        }
    }

    private static void SetOption(int fd, int name, void* value, uint length, string what)
    {
        if (Xsk.setsockopt(fd, Xsk.SOL_XDP, name, value, length) != 0)
            throw XskException.From("setsockopt " + what, LibC.LastErrno());
    }

    /// <summary>Binds, retrying EBUSY for a while: the kernel releases a queue a previous socket held only after an
    /// RCU grace period, so a rebind right after a teardown can meet EBUSY.</summary>
    private static int Bind(int fd, int ifIndex, uint queueId, ushort flags, XskSocket? owner)
    {
        var address = new sockaddr_xdp
        {
            sxdp_family = Xsk.AF_XDP,
            sxdp_flags = flags,
            sxdp_ifindex = (uint)ifIndex,
            sxdp_queue_id = queueId,
            sxdp_shared_umem_fd = owner is null ? 0u : (uint)owner._handle.Value,
        };
        var deadline = Environment.TickCount64 + (long)s_busyRetry.TotalMilliseconds;
        while (true)
        {
            if (Xsk.bind(fd, &address, (uint)sizeof(sockaddr_xdp)) == 0)
                return 0;
            int errno = LibC.LastErrno();
            if (errno != Errno.EBUSY || Environment.TickCount64 > deadline)
                return errno;
            Thread.Sleep(20);
        }
    }

    private static int FillFromPool(XskRing fill, Umem umem, int count)
    {
        uint n = fill.Reserve((uint)Math.Min(count, umem.FreeFrames), out uint index);
        for (uint i = 0; i < n; i++)
        {
            umem.TryAllocate(out var address);
            fill.Address(index + i) = address;
        }
        fill.Submit();
        return (int)n;
    }

    // ---- the hot path ----

    /// <summary>
    /// Takes up to <c>descriptors.Length</c> received frames from the RX ring. The frames are the caller's until it
    /// gives them back with <see cref="Refill(ReadOnlySpan{XdpDesc})"/>, transmits them, or frees them to the UMEM.
    /// </summary>
    public int Receive(Span<XdpDesc> descriptors)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var rx = _rx!;
        uint n = rx.Peek((uint)descriptors.Length, out uint index);
        for (uint i = 0; i < n; i++)
            descriptors[(int)i] = rx.Descriptor(index + i);
        if (n > 0)
            rx.Release();
        else
            WakeForFill();
        return (int)n;
    }

    /// <summary>Gives received frames back to the kernel for new packets (fill ring); returns how many fitted.</summary>
    public int Refill(ReadOnlySpan<XdpDesc> descriptors)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint n = _fill.Reserve((uint)descriptors.Length, out uint index);
        for (uint i = 0; i < n; i++)
            _fill.Address(index + i) = Umem.ChunkAddress(descriptors[(int)i].Address);
        if (n > 0)
            _fill.Submit();
        return (int)n;
    }

    /// <summary>Gives frames (any address within each) to the fill ring; returns how many fitted.</summary>
    public int Refill(ReadOnlySpan<ulong> addresses)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint n = _fill.Reserve((uint)addresses.Length, out uint index);
        for (uint i = 0; i < n; i++)
            _fill.Address(index + i) = Umem.ChunkAddress(addresses[(int)i]);
        if (n > 0)
            _fill.Submit();
        return (int)n;
    }

    /// <summary>Moves up to <paramref name="count"/> frames from the UMEM's pool into the fill ring.</summary>
    public int FillFromPool(int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return FillFromPool(_fill, Umem, count);
    }

    /// <summary>
    /// Queues frames for sending and kicks the kernel when it asks (always in copy mode, where sending happens in
    /// the syscall). Returns how many were queued (fewer when the TX ring is full); the frames come back through
    /// <see cref="Complete"/>.
    /// </summary>
    public int Transmit(ReadOnlySpan<XdpDesc> descriptors)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var tx = _tx!;
        uint n = tx.Reserve((uint)descriptors.Length, out uint index);
        for (uint i = 0; i < n; i++)
        {
            ref var d = ref tx.Descriptor(index + i);
            d = descriptors[(int)i];
            d.Options = 0;
        }
        if (n > 0)
        {
            tx.Submit();
            KickTx();
        }
        return (int)n;
    }

    /// <summary>Takes the addresses of frames the kernel has finished sending; returns how many.</summary>
    public int Complete(Span<ulong> addresses)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint n = _completion.Peek((uint)addresses.Length, out uint index);
        for (uint i = 0; i < n; i++)
            addresses[(int)i] = _completion.Address(index + i);
        if (n > 0)
            _completion.Release();
        else if (_tx!.Outstanding > 0)
            KickTx();
        return (int)n;
    }

    /// <summary>Moves every completed frame straight back to the fill ring (a reflector's bookkeeping); returns how many.</summary>
    public int RecycleCompleted()
    {
        Span<ulong> batch = stackalloc ulong[64];
        int total = 0;
        int n;
        while ((n = Complete(batch)) > 0)
        {
            int placed = Refill(batch[..n]);
            for (int i = placed; i < n; i++)
                Umem.Free(batch[i]);
            total += n;
        }
        return total;
    }

    /// <summary>
    /// Kicks until the kernel has taken every queued TX frame or <paramref name="timeout"/> passes; true when the TX
    /// ring is empty. Copy mode sends at most 32 frames per kick, so a batch larger than that needs more kicks: call
    /// this before disposing a socket that still has frames to send.
    /// </summary>
    public bool Flush(TimeSpan timeout)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (_tx!.Outstanding > 0)
        {
            if (Environment.TickCount64 > deadline)
                return false;
            var r = Xsk.sendto(_handle.Value, null, 0, Xsk.MSG_DONTWAIT, null, 0);
            if (r < 0 && LibC.LastErrno() is not (Errno.EAGAIN or Errno.EBUSY or 105 or 4))
                throw XskException.From("sendto (TX flush)", LibC.LastErrno());
            if (_tx.Outstanding > 0)
                Thread.Yield();
        }
        return true;
    }

    /// <summary>The packet bytes of a descriptor.</summary>
    public Span<byte> Data(in XdpDesc descriptor) => Umem.Data(descriptor);

    /// <summary>Frames queued for sending that the kernel has not taken yet.</summary>
    public int PendingTransmit => (int)_tx!.Outstanding;

    /// <summary>Frames in the fill ring the kernel has not used yet.</summary>
    public int FillLevel => (int)_fill.Outstanding;

    /// <summary>Tells the kernel to send what the TX ring holds (needed in copy mode, and when it asks for a wakeup).</summary>
    public void KickTx()
    {
        if (_needWakeup && !_tx!.NeedsWakeup)
            return;
        var r = Xsk.sendto(_handle.Value, null, 0, Xsk.MSG_DONTWAIT, null, 0);
        if (r < 0)
        {
            int errno = LibC.LastErrno();
            // The kernel is busy or out of room for now: the next kick retries. Anything else is a real failure.
            if (errno is not (Errno.EAGAIN or Errno.EBUSY or 105 /* ENOBUFS */ or 100 /* ENETDOWN */ or 4 /* EINTR */))
                throw XskException.From("sendto (TX kick)", errno);
        }
    }

    private void WakeForFill()
    {
        if (_needWakeup && _fill.NeedsWakeup)
            Xsk.recvfrom(_handle.Value, null, 0, Xsk.MSG_DONTWAIT, null, null);
    }

    /// <summary>Waits until the RX ring has frames or <paramref name="timeout"/> passes; true when frames are there.</summary>
    public bool WaitForReceive(TimeSpan timeout)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var pfd = new PollFd { fd = _handle.Value, events = Xsk.POLLIN };
        int ms = timeout == Timeout.InfiniteTimeSpan ? -1 : (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue);
        int r = Xsk.poll(&pfd, 1, ms);
        if (r < 0)
        {
            int errno = LibC.LastErrno();
            if (errno == 4 /* EINTR */)
                return false;
            throw XskException.From("poll", errno);
        }
        return r > 0 && (pfd.revents & Xsk.POLLIN) != 0;
    }

    /// <summary>
    /// Waits, off the calling thread, until frames arrive, <paramref name="timeout"/> passes (false) or
    /// <paramref name="cancellationToken"/> is cancelled (throws). Polls in short slices so a cancel is seen quickly.
    /// </summary>
    public Task<bool> WaitForReceiveAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Task.Factory.StartNew(() =>
        {
            var deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long left = deadline - Environment.TickCount64;
                if (left <= 0)
                    return false;
                if (WaitForReceive(TimeSpan.FromMilliseconds(Math.Min(left, 50))))
                    return true;
            }
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The socket's counters (XDP_STATISTICS).</summary>
    public XskStatistics GetStatistics()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        xdp_statistics s = default;
        uint length = (uint)sizeof(xdp_statistics);
        if (Xsk.getsockopt(_handle.Value, Xsk.SOL_XDP, Xsk.XDP_STATISTICS, &s, &length) != 0)
            throw XskException.From("getsockopt XDP_STATISTICS", LibC.LastErrno());
        return new XskStatistics(s.rx_dropped, s.rx_invalid_descs, s.tx_invalid_descs, s.rx_ring_full,
            s.rx_fill_ring_empty_descs, s.tx_ring_empty_descs);
    }

    /// <summary>The socket's own ring mappings (start, length), for leak checks.</summary>
    internal IEnumerable<(nint Start, nuint Length)> Mappings => _maps.Select(m => ((nint)m.Pointer, m.Length)).ToList();

    public override string ToString() => $"AF_XDP socket on ifindex {IfIndex} queue {QueueId} ({(IsZeroCopy ? "zero-copy" : "copy")})";

    /// <summary>Closes the socket (the kernel drops it from every XSKMAP), unmaps its own rings and drops its reference on
    /// the UMEM (the last socket of a disposed UMEM unmaps it).</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        try
        {
            _handle.Dispose();
        }
        finally
        {
            foreach (var map in _maps)
                map.Dispose();
            foreach (var map in _borrowed)
                map.DangerousRelease();
            // Last: the UMEM's memory stays mapped until its last socket is gone.
            Umem.RemoveSocket(this);
        }
    }
}
