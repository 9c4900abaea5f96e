using System.Runtime.InteropServices;
using SharpBpf.Asm;
using SharpBpf.Linux.Interop;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// Hands a frame to the kernel as if it had just arrived on an interface's queue: BPF_PROG_TEST_RUN in live-frames
/// mode (BPF_F_TEST_XDP_LIVE_FRAMES) runs a kernel XDP program on the frame with <c>ingress_ifindex</c> and
/// <c>rx_queue_index</c> set to that queue, and the kernel acts on its verdict for real: XDP_PASS builds an skb and
/// delivers it to the stack on that interface (netif_receive_skb_list), XDP_REDIRECT to an XSKMAP puts it in that
/// socket's RX ring. The kernel takes one frame per call (its <c>repeat</c> re-runs the same frame), so each frame
/// costs one bpf(2) call.
/// </summary>
internal sealed unsafe class LiveFrameInjector : IDisposable
{
    private const uint LiveFrames = 1u << 1; // BPF_F_TEST_XDP_LIVE_FRAMES
    private readonly BpfProgram _program;
    private readonly bool _ownsProgram;

    private LiveFrameInjector(BpfProgram program, bool ownsProgram)
    {
        _program = program;
        _ownsProgram = ownsProgram;
    }

    /// <summary>A two-instruction <c>return XDP_PASS</c> program: what it is given enters the kernel stack.</summary>
    public static LiveFrameInjector Pass()
    {
        var spec = new ProgramSpec
        {
            Name = "sbpf_pass",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            License = "GPL",
            Instructions =
            [
                new Instruction(new OpCode(0xb7), Register.R0, 0, 0, 2), // r0 = XDP_PASS
                new Instruction(new OpCode(0x95), 0, 0, 0, 0),           // exit
            ],
        };
        return new LiveFrameInjector(BpfProgram.Load(spec), ownsProgram: true);
    }

    /// <summary>Injects through <paramref name="program"/> (not owned: the caller disposes it).</summary>
    public static LiveFrameInjector Through(BpfProgram program) => new(program, ownsProgram: false);

    /// <summary>
    /// Runs the program once on <paramref name="frame"/> as received on <paramref name="ifIndex"/> queue
    /// <paramref name="queueId"/> (both in the calling thread's network namespace); returns 0 or the errno.
    /// </summary>
    public int Inject(ReadOnlySpan<byte> frame, int ifIndex, uint queueId, uint repeat = 1) => Inject(frame, ifIndex, queueId, repeat, out _);

    /// <summary>As <see cref="Inject(ReadOnlySpan{byte}, int, uint, uint)"/>, with the kernel's average time per
    /// frame (ns, measured inside the call: the frame's setup, the program and the verdict's work).</summary>
    public int Inject(ReadOnlySpan<byte> frame, int ifIndex, uint queueId, uint repeat, out uint nanosecondsPerFrame) =>
        Inject(frame, 0, ifIndex, queueId, repeat, out nanosecondsPerFrame);

    /// <summary>As above, with the first <paramref name="metadataLength"/> bytes of <paramref name="frame"/> given to the
    /// program as metadata (before <c>data</c>; a multiple of 4, at most 32).</summary>
    public int Inject(ReadOnlySpan<byte> frame, int metadataLength, int ifIndex, uint queueId, uint repeat, out uint nanosecondsPerFrame)
    {
        // The kernel checks the context against the data: data = the metadata's length, data_end = the whole
        // input's length, data_meta 0, no egress ifindex.
        var ctx = new XdpMd { Data = (uint)metadataLength, DataEnd = (uint)frame.Length, IngressIfindex = (uint)ifIndex, RxQueueIndex = queueId };
        fixed (byte* data = frame)
        {
            var attr = new ProgTestRunAttr
            {
                DataIn = (ulong)data,
                DataSizeIn = (uint)frame.Length,
                Repeat = repeat,
                CtxIn = (ulong)&ctx,
                CtxSizeIn = (uint)sizeof(XdpMd),
                Flags = LiveFrames,
                BatchSize = Math.Min(repeat, 64u), // the page pool the kernel sets up per call holds one batch
            };
            int r = Bpf.Default.TryProgTestRun(_program.Fd, ref attr);
            nanosecondsPerFrame = attr.Duration;
            return r < 0 ? -r : 0;
        }
    }

    public void Dispose()
    {
        if (_ownsProgram)
            _program.Dispose();
    }

    /// <summary>struct xdp_md as BPF_PROG_TEST_RUN takes it for an XDP program.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct XdpMd
    {
        public uint Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex;
    }
}
