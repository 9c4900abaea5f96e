using System.Diagnostics;
using SharpBpf.Linux.Links;
using SharpBpf.Maps;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.AfXdp;

/// <summary>Per-verdict frame counts of a user-space XDP run.</summary>
public sealed class UserXdpCounters
{
    private long _received, _drop, _pass, _tx, _redirect, _aborted, _redirectFailed, _txFailed;

    public long Received => Volatile.Read(ref _received);
    public long Drop => Volatile.Read(ref _drop);
    /// <summary>XDP_PASS verdicts. Such frames are counted and recycled: they do not reach the kernel stack (see docs/af-xdp.md).</summary>
    public long Pass => Volatile.Read(ref _pass);
    public long Tx => Volatile.Read(ref _tx);
    public long Redirect => Volatile.Read(ref _redirect);
    public long Aborted => Volatile.Read(ref _aborted);
    /// <summary>REDIRECTs to a target no socket of this run serves (counted apart, frame recycled).</summary>
    public long RedirectFailed => Volatile.Read(ref _redirectFailed);
    /// <summary>TX or REDIRECT frames the TX ring had no room for (recycled).</summary>
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
    public XdpAttachMode AttachMode { get; init; } = XdpAttachMode.Native;
    public int FrameCount { get; init; } = 4096;
    /// <summary>Called once the socket is bound and the redirect program attached: frames sent from now on are taken.</summary>
    public Action? Ready { get; init; }
    /// <summary>Called with each trap's message (an ABORTED verdict from a fault in the program).</summary>
    public Action<string>? Trace { get; init; }
}

/// <summary>
/// Runs an XDP program of the managed VM on live frames: the kernel-side <see cref="XskRedirect"/> program sends a
/// queue's frames to an AF_XDP socket, and each frame is run through the VM program in user space. DROP recycles the
/// frame; TX sends it back out of the interface; REDIRECT to a devmap entry or bpf_redirect naming this interface,
/// or to an xskmap entry of this queue, sends it out of this run's socket; other redirect targets are counted as
/// failed; PASS is counted and the frame recycled (user space has no way back into the receive path short of a TAP
/// device, which this runner does not create); ABORTED is counted and its trap traced.
/// </summary>
public static unsafe class UserXdpDatapath
{
    /// <summary>Runs until the count, the duration or the token says stop; returns the counters (also live through <paramref name="counters"/>).</summary>
    public static UserXdpCounters Run(int ifIndex, VmProgram program, UserXdpOptions? options = null,
        UserXdpCounters? counters = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(program);
        options ??= new UserXdpOptions();
        counters ??= new UserXdpCounters();
        using var umem = new Umem(new UmemOptions { FrameCount = options.FrameCount, FrameSize = 4096 });
        using var socket = XskSocket.Create(ifIndex, options.QueueId, umem, new XskSocketOptions { Mode = options.Mode });
        using var redirect = XskRedirect.Load();
        redirect.Register(socket);
        redirect.Attach(ifIndex, options.AttachMode);
        options.Ready?.Invoke();
        using var execution = new VmExecution();
        using var context = new XdpContext();
        context.IngressIfindex = (uint)ifIndex;
        context.RxQueueIndex = options.QueueId;

        Span<XdpDesc> batch = stackalloc XdpDesc[64];
        Span<XdpDesc> recycle = stackalloc XdpDesc[64];
        Span<XdpDesc> send = stackalloc XdpDesc[64];
        var clock = Stopwatch.StartNew();
        long deadline = options.Duration is { } d ? (long)d.TotalMilliseconds : long.MaxValue;
        while (!cancellationToken.IsCancellationRequested && clock.ElapsedMilliseconds < deadline
            && (options.Count == 0 || counters.Received < options.Count))
        {
            socket.RecycleCompleted();
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
                counters.Count(action);
                if (trap is not null)
                    options.Trace?.Invoke(trap.Message);
                bool transmit = action == XdpAction.Tx;
                if (action == XdpAction.Redirect)
                {
                    transmit = RoutesHere(execution.Redirect, program.Collection, ifIndex, options.QueueId);
                    if (!transmit)
                        counters.RedirectMissed();
                }
                if (transmit && TryStore(umem, ref desc, context.Packet))
                    send[sending++] = desc;
                else
                {
                    if (transmit)
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
            if (recycled > 0)
                Refill(socket, recycle[..recycled]);
        }
        // Frames still in flight come back before the socket closes, so the counters match what left the wire.
        socket.Flush(TimeSpan.FromMilliseconds(500));
        socket.RecycleCompleted();
        return counters;
    }

    /// <summary>Whether a redirect goes out of this run's socket: to this interface, or to this queue's xskmap slot.</summary>
    private static bool RoutesHere(XdpRedirect? target, VmCollection? collection, int ifIndex, uint queueId)
    {
        if (target is null)
            return false;
        switch (target.Kind)
        {
            case XdpRedirectKind.Interface when target.MapName is null:
                return target.Index == (uint)ifIndex;
            case XdpRedirectKind.Interface:
                return collection?.Map(target.MapName) is IRedirectMap devmap && devmap.TryGetTarget(target.Index, out var t)
                    && t.IfIndex == (uint)ifIndex;
            case XdpRedirectKind.Socket:
                return target.Index == queueId;
            default:
                return false;
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
