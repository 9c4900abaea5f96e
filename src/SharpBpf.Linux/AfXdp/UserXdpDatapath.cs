using System.Diagnostics;
using SharpBpf.Linux.Links;
using SharpBpf.Maps;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.AfXdp;

/// <summary>Per-verdict frame counts of a user-space XDP run.</summary>
public sealed class UserXdpCounters
{
    private long _received, _drop, _pass, _tx, _redirect, _aborted, _redirectFailed, _txFailed, _passFailed;

    public long Received => Volatile.Read(ref _received);
    public long Drop => Volatile.Read(ref _drop);
    /// <summary>XDP_PASS verdicts: each such frame is handed to the kernel stack on the interface it came in on (see docs/af-xdp.md).</summary>
    public long Pass => Volatile.Read(ref _pass);
    /// <summary>PASS frames the kernel refused to take back (the errno goes to the trace).</summary>
    public long PassFailed => Volatile.Read(ref _passFailed);
    public long Tx => Volatile.Read(ref _tx);
    /// <summary>XDP_REDIRECT verdicts whose target this run serves: another interface, this one, or an xskmap socket.</summary>
    public long Redirect => Volatile.Read(ref _redirect);
    /// <summary>XDP_ABORTED verdicts, traps, and redirects to a target no one serves (each traced).</summary>
    public long Aborted => Volatile.Read(ref _aborted);
    /// <summary>REDIRECTs to a known target that did not take the frame (the errno goes to the trace).</summary>
    public long RedirectFailed => Volatile.Read(ref _redirectFailed);
    /// <summary>TX or REDIRECT frames a TX ring had no room for (recycled).</summary>
    public long TxFailed => Volatile.Read(ref _txFailed);

    internal void Count(XdpAction action)
    {
        switch (action)
        {
            case XdpAction.Drop: _drop++; break;
            case XdpAction.Pass: _pass++; break;
            case XdpAction.Tx: _tx++; break;
            case XdpAction.Redirect: _redirect++; break;
            default: _aborted++; break;
        }
    }

    internal void AddReceived(int n) => Volatile.Write(ref _received, _received + n);
    internal void RedirectMissed() => _redirectFailed++;
    internal void TxMissed() => _txFailed++;
    internal void PassMissed() => _passFailed++;
}

/// <summary>Options of <see cref="UserXdpDatapath.Run"/>.</summary>
public sealed record UserXdpOptions
{
    public uint QueueId { get; init; }
    /// <summary>Stop after this many frames (0: no limit).</summary>
    public long Count { get; init; }
    /// <summary>Stop after this long (null: no limit; with neither limit, only the cancellation token stops the run).</summary>
    public TimeSpan? Duration { get; init; }
    public XskBindMode Mode { get; init; } = XskBindMode.Auto;
    /// <summary>How the kernel-side redirect program is attached. Native by default; in <see cref="XdpAttachMode.Skb"/>
    /// mode a frame handed back to the stack would meet the redirect program again, so PASS frames are then only
    /// counted (and <see cref="PassToKernel"/> must be false).</summary>
    public XdpAttachMode AttachMode { get; init; } = XdpAttachMode.Native;
    /// <summary>Hand XDP_PASS frames to the kernel stack (BPF_PROG_TEST_RUN in live-frames mode, one call per batch); false counts and recycles them.</summary>
    public bool PassToKernel { get; init; } = true;
    public int FrameCount { get; init; } = 4096;
    /// <summary>Called once the socket is bound and the redirect program attached: frames sent from now on are taken.</summary>
    public Action? Ready { get; init; }
    /// <summary>Called with each trap's message (an ABORTED verdict from a fault in the program), each redirect to a
    /// target no one serves, and each frame a target or the stack refused.</summary>
    public Action<string>? Trace { get; init; }
    /// <summary>For leak tests: sees the run's UMEM once it exists.</summary>
    internal Action<Umem>? UmemCreated { get; init; }
}

/// <summary>
/// Runs an XDP program of the managed VM on live frames: the kernel-side <see cref="XskRedirect"/> program sends a
/// queue's frames to an AF_XDP socket, and each frame is run through the VM program in user space.
/// <list type="bullet">
/// <item>DROP recycles the frame.</item>
/// <item>TX sends it back out of the interface (this run's socket).</item>
/// <item>PASS hands it to the kernel stack as received on this interface and queue: one BPF_PROG_TEST_RUN in
/// live-frames mode per received batch runs the attached redirect program once per PASS frame, each run
/// returning XDP_PASS on a copy of one frame, and the kernel builds an skb of each and receives it.</item>
/// <item>REDIRECT to a devmap/devmap_hash entry or bpf_redirect(ifindex): out of that interface, through an AF_XDP
/// socket this run binds there on first use (queue 0, sharing the UMEM, so the frame is not copied again); to an
/// xskmap slot holding an <see cref="XskSocket"/> (<see cref="Maps.XskMap.SetSocket"/>): into that socket's RX
/// ring, by a live-frames test run of an XSKMAP redirect on the socket's own interface and queue. A target no one
/// serves (an empty xskmap socket, a cpumap, an interface that does not exist) is ABORTED and traced.</item>
/// <item>ABORTED is counted and its trap traced.</item>
/// </list>
/// Everything the run creates (sockets, UMEM, programs, maps, attachment) is released when it returns or throws.
/// </summary>
public static unsafe class UserXdpDatapath
{
    private const int Batch = 64;

    /// <summary>Runs until the count, the duration or the token says stop; returns the counters (also live through <paramref name="counters"/>).</summary>
    public static UserXdpCounters Run(int ifIndex, VmProgram program, UserXdpOptions? options = null,
        UserXdpCounters? counters = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(program);
        options ??= new UserXdpOptions();
        counters ??= new UserXdpCounters();
        if (options.PassToKernel && options.AttachMode == XdpAttachMode.Skb)
            throw new ArgumentException("PASS frames cannot go back to the stack with the redirect program in skb (generic) mode: "
                + "the stack would run it on them again; attach natively or set PassToKernel = false", nameof(options));
        using var umem = new Umem(new UmemOptions { FrameCount = options.FrameCount, FrameSize = 4096 });
        options.UmemCreated?.Invoke(umem);
        using var socket = XskSocket.Create(ifIndex, options.QueueId, umem, new XskSocketOptions { Mode = options.Mode });
        using var egress = new Egress(socket, options.Mode);
        using var redirect = XskRedirect.Load();
        redirect.Register(socket);
        var attachment = redirect.Attach(ifIndex, options.AttachMode);
        // Auto may have settled for generic mode, where a re-injected frame would loop through the redirect program.
        using var injector = options.PassToKernel && attachment.Mode != XdpAttachMode.Skb ? StackInjector.Over(redirect) : null;
        options.Ready?.Invoke();
        using var execution = new VmExecution();
        using var context = new XdpContext();
        context.IngressIfindex = (uint)ifIndex;
        context.RxQueueIndex = options.QueueId;

        Span<XdpDesc> batch = stackalloc XdpDesc[Batch];
        Span<XdpDesc> recycle = stackalloc XdpDesc[Batch];
        Span<XdpDesc> send = stackalloc XdpDesc[Batch];
        Span<StackInjector.Result> results = stackalloc StackInjector.Result[StackInjector.Capacity];
        var clock = Stopwatch.StartNew();
        long deadline = options.Duration is { } d ? (long)d.TotalMilliseconds : long.MaxValue;
        while (!cancellationToken.IsCancellationRequested && clock.ElapsedMilliseconds < deadline
            && (options.Count == 0 || counters.Received < options.Count))
        {
            socket.RecycleCompleted();
            egress.RecycleCompleted();
            int wanted = options.Count == 0 ? batch.Length : (int)Math.Min(batch.Length, options.Count - counters.Received);
            int n = socket.Receive(batch[..wanted]);
            if (n == 0)
            {
                socket.WaitForReceive(TimeSpan.FromMilliseconds(Math.Clamp(deadline - clock.ElapsedMilliseconds, 0, 50)));
                continue;
            }
            counters.AddReceived(n);
            int recycled = 0, sending = 0;
            for (int i = 0; i < n; i++)
            {
                var desc = batch[i];
                context.SetPacket(socket.Data(desc));
                var action = program.RunXdp(execution, context, out var trap);
                if (trap is not null)
                    options.Trace?.Invoke(trap.Message);
                XskSocket? via = null;
                switch (action)
                {
                    case XdpAction.Tx:
                        via = socket;
                        break;
                    case XdpAction.Pass when injector is not null:
                        if (!injector.Add(context.Packet, ifIndex, options.QueueId))
                        {
                            counters.PassMissed();
                            options.Trace?.Invoke($"XDP_PASS: a {context.Packet.Length}-byte frame cannot go back to the stack "
                                + $"(14 to {StackInjector.MaxFrameLength} bytes can)");
                        }
                        break;
                    case XdpAction.Redirect:
                        switch (egress.Resolve(execution.Redirect, program.Collection, out via, out var error))
                        {
                            case Route.Unknown:
                                options.Trace?.Invoke($"XDP_REDIRECT: {error}");
                                action = XdpAction.Aborted;
                                break;
                            case Route.Socket:
                                if (egress.Deliver(via!, context.Packet, injector) is { } refused)
                                {
                                    counters.RedirectMissed();
                                    options.Trace?.Invoke($"XDP_REDIRECT to {via}: {refused}");
                                }
                                via = null;
                                break;
                        }
                        break;
                }
                counters.Count(action);
                if (via is null)
                    recycle[recycled++] = desc;
                else if (!TryStore(umem, ref desc, context.Packet))
                {
                    counters.TxMissed();
                    recycle[recycled++] = desc;
                }
                else if (via == socket)
                    send[sending++] = desc;
                else if (!egress.Queue(via, desc))
                {
                    counters.TxMissed();
                    recycle[recycled++] = desc;
                }
            }
            int sent = sending == 0 ? 0 : socket.Transmit(send[..sending]);
            for (int i = sent; i < sending; i++)
            {
                counters.TxMissed();
                recycle[recycled++] = send[i];
            }
            egress.Transmit(counters);
            if (injector is { Count: > 0 } stack)
            {
                // One bpf(2) call hands the batch's PASS frames to the stack, one more each xskmap socket's frames to it.
                int groups = stack.Flush(results);
                foreach (var r in results[..groups])
                {
                    for (int i = r.Taken; i < r.Queued; i++)
                    {
                        if (r.Group.Xsk == 0)
                            counters.PassMissed();
                        else
                            counters.RedirectMissed();
                    }
                    if (r.Errno != 0 || r.Taken != r.Queued)
                        options.Trace?.Invoke((r.Group.Xsk == 0 ? "XDP_PASS: the stack" : $"XDP_REDIRECT: the AF_XDP socket on ifindex {r.Group.IfIndex} queue {r.Group.QueueId}")
                            + $" took {r.Taken} of {r.Queued} frames" + (r.Errno != 0 ? $" ({Errno.Name(r.Errno)})" : ""));
                }
            }
            if (recycled > 0)
                Refill(socket, recycle[..recycled]);
        }
        // Frames still in flight come back before the sockets close, so the counters match what left the wire.
        socket.Flush(TimeSpan.FromMilliseconds(500));
        egress.Flush(TimeSpan.FromMilliseconds(500));
        socket.RecycleCompleted();
        egress.RecycleCompleted();
        return counters;
    }

    private enum Route { Unknown, Interface, Socket }

    /// <summary>
    /// The other ends of REDIRECT: a TX socket on each other interface a program sends to (made on first use, on
    /// the run's UMEM), and an XSKMAP redirect program for each xskmap socket a program delivers to.
    /// </summary>
    private sealed class Egress(XskSocket main, XskBindMode mode) : IDisposable
    {
        private readonly Dictionary<int, Out> _interfaces = [];
        private readonly Dictionary<int, string> _unusable = [];
        private readonly Dictionary<XskSocket, (XskRedirect Program, LiveFrameInjector Injector)> _deliveries = [];

        private sealed class Out(XskSocket socket)
        {
            public readonly XskSocket Socket = socket;
            public readonly XdpDesc[] Pending = new XdpDesc[Batch];
            public int Count;
        }

        public Route Resolve(XdpRedirect? target, VmCollection? collection, out XskSocket? via, out string? error)
        {
            via = null;
            error = null;
            if (target is null)
            {
                error = "no target recorded";
                return Route.Unknown;
            }
            switch (target.Kind)
            {
                case XdpRedirectKind.Interface:
                    uint ifIndex = target.Index;
                    if (target.MapName is not null)
                    {
                        // The VM already resolved the devmap entry into an ifindex when the program ran.
                        if (collection?.Map(target.MapName) is not IRedirectMap)
                        {
                            error = $"map '{target.MapName}' is not a devmap of this program";
                            return Route.Unknown;
                        }
                    }
                    via = Interface((int)ifIndex, out error);
                    return via is null ? Route.Unknown : Route.Interface;
                case XdpRedirectKind.Socket:
                    if (collection?.Map(target.MapName!) is XskMap xsk && xsk.GetSocket(target.Index) is XskSocket socket)
                    {
                        via = socket;
                        return Route.Socket;
                    }
                    error = $"xskmap '{target.MapName}' slot {target.Index} holds no AF_XDP socket of this process (XskMap.SetSocket)";
                    return Route.Unknown;
                default:
                    error = $"{target.Kind} redirects ('{target.MapName}' entry {target.Index}) are not served in user space";
                    return Route.Unknown;
            }
        }

        private XskSocket? Interface(int ifIndex, out string? error)
        {
            error = null;
            if (ifIndex == main.IfIndex)
                return main;
            if (_interfaces.TryGetValue(ifIndex, out var known))
                return known.Socket;
            if (_unusable.TryGetValue(ifIndex, out error))
                return null;
            try
            {
                // TX only: no fill frames, small RX and fill rings. Sharing the UMEM, the frame leaves from where it
                // was received; the completion comes back on this socket's own completion ring.
                var socket = XskSocket.Create(ifIndex, 0, main.Umem, new XskSocketOptions
                {
                    Mode = mode, RxRingSize = 64, FillRingSize = 64, TxRingSize = 2048, CompletionRingSize = 2048, InitialFillFrames = 0,
                });
                _interfaces[ifIndex] = new Out(socket);
                return socket;
            }
            catch (BpfException e)
            {
                error = $"ifindex {ifIndex}: {e.Message}";
                _unusable[ifIndex] = error;
                return null;
            }
        }

        public bool Queue(XskSocket socket, in XdpDesc desc)
        {
            var o = _interfaces[socket.IfIndex];
            if (o.Count == o.Pending.Length)
                return false;
            o.Pending[o.Count++] = desc;
            return true;
        }

        public void Transmit(UserXdpCounters counters)
        {
            foreach (var o in _interfaces.Values)
            {
                if (o.Count == 0)
                    continue;
                int sent = o.Socket.Transmit(o.Pending.AsSpan(0, o.Count));
                for (int i = sent; i < o.Count; i++)
                {
                    counters.TxMissed();
                    Give(o.Pending[i].Address);
                }
                o.Count = 0;
            }
        }

        /// <summary>Queues a frame for an xskmap socket (sent with the batch's injection call), or, with no injector,
        /// delivers it at once with a call of its own; returns why it was refused, or null.</summary>
        public string? Deliver(XskSocket target, ReadOnlySpan<byte> frame, StackInjector? injector)
        {
            if (injector is not null && injector.SocketId(target) is var id and not 0)
                return injector.Add(frame, new StackInjector.Group(target.IfIndex, target.QueueId, id))
                    ? null : $"a {frame.Length}-byte frame cannot be delivered (14 to {StackInjector.MaxFrameLength} bytes can)";
            if (!_deliveries.TryGetValue(target, out var d))
            {
                var program = XskRedirect.Load();
                try
                {
                    program.Register(target);
                    d = (program, LiveFrameInjector.Through(program.Program));
                }
                catch
                {
                    program.Dispose();
                    throw;
                }
                _deliveries[target] = d;
            }
            return d.Injector.Inject(frame, target.IfIndex, target.QueueId) is var errno and not 0
                ? $"the kernel refused the frame ({Errno.Name(errno)})" : null;
        }

        /// <summary>Frames other interfaces have sent go back to the main socket's fill ring.</summary>
        public void RecycleCompleted()
        {
            Span<ulong> done = stackalloc ulong[Batch];
            foreach (var o in _interfaces.Values)
            {
                int n;
                while ((n = o.Socket.Complete(done)) > 0)
                {
                    int placed = main.Refill(done[..n]);
                    for (int i = placed; i < n; i++)
                        main.Umem.Free(done[i]);
                }
            }
        }

        private void Give(ulong address)
        {
            if (main.Refill([address]) == 0)
                main.Umem.Free(address);
        }

        public void Flush(TimeSpan timeout)
        {
            foreach (var o in _interfaces.Values)
                o.Socket.Flush(timeout);
        }

        public void Dispose()
        {
            List<Exception>? errors = null;
            foreach (var o in _interfaces.Values)
                Try(o.Socket.Dispose, ref errors);
            foreach (var d in _deliveries.Values)
            {
                Try(d.Injector.Dispose, ref errors);
                Try(d.Program.Dispose, ref errors);
            }
            if (errors is not null)
                throw new AggregateException("releasing the redirect targets of a user-space XDP run", errors);
        }

        private static void Try(Action release, ref List<Exception>? errors)
        {
            try { release(); }
            catch (Exception e) { (errors ??= []).Add(e); }
        }
    }

    /// <summary>Writes the program's (possibly resized) packet back into its frame, at the offset the kernel gave it.</summary>
    private static bool TryStore(Umem umem, ref XdpDesc desc, Span<byte> packet)
    {
        ulong chunk = umem.ChunkAddress(desc.Address);
        ulong start = umem.DataOffset(desc.Address);
        if (start + (ulong)packet.Length > chunk + (ulong)umem.FrameSize)
            return false;
        packet.CopyTo(new Span<byte>(umem.Base + start, packet.Length));
        desc.Length = (uint)packet.Length;
        return true;
    }

    private static void Refill(XskSocket socket, ReadOnlySpan<XdpDesc> frames)
    {
        int placed = socket.Refill(frames);
        for (int i = placed; i < frames.Length; i++)
            socket.Umem.Free(frames[i].Address);
    }
}
