using SharpBpf.Linux.AfXdp;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.AfXdp;

/// <summary>The examples of docs/af-xdp.md, word for word, and the tests that run them.</summary>
[Collection("AF_XDP")] // one at a time: the fd-leak check sees the whole process
public sealed class DocExamples
{
    // ---- docs/af-xdp.md: "An L2 reflector" ----
    public static long Reflect(string iface, long frames, CancellationToken token)
    {
        using var umem = new Umem();
        using var socket = XskSocket.Create(iface, queueId: 0, umem);
        using var redirect = XskRedirect.Load();
        redirect.Register(socket);
        redirect.Attach(socket.IfIndex);

        Span<XdpDesc> batch = stackalloc XdpDesc[64];
        Span<byte> mac = stackalloc byte[6];
        long reflected = 0;
        while (reflected < frames && !token.IsCancellationRequested)
        {
            socket.RecycleCompleted();                      // sent frames go back to the fill ring
            int n = socket.Receive(batch);
            if (n == 0) { socket.WaitForReceive(TimeSpan.FromMilliseconds(50)); continue; }
            foreach (var d in batch[..n])
            {
                var eth = socket.Data(d);                   // swap destination and source MAC
                eth[..6].CopyTo(mac); eth[6..12].CopyTo(eth); mac.CopyTo(eth[6..]);
            }
            reflected += socket.Transmit(batch[..n]);
        }
        socket.Flush(TimeSpan.FromSeconds(1));              // copy mode sends 32 frames per kick
        return reflected;
    }

    // ---- docs/af-xdp.md: "A packet counter" ----
    public static (long Packets, long Bytes) Count(string iface, TimeSpan duration)
    {
        using var umem = new Umem();
        using var socket = XskSocket.Create(iface, queueId: 0, umem);
        using var redirect = XskRedirect.Load();
        redirect.Register(socket);
        redirect.Attach(socket.IfIndex);

        Span<XdpDesc> batch = stackalloc XdpDesc[64];
        long packets = 0, bytes = 0;
        var end = DateTime.UtcNow + duration;
        while (DateTime.UtcNow < end)
        {
            int n = socket.Receive(batch);
            if (n == 0) { socket.WaitForReceive(TimeSpan.FromMilliseconds(50)); continue; }
            foreach (var d in batch[..n]) bytes += d.Length;
            packets += n;
            socket.Refill(batch[..n]);                      // the frames are free for new packets
        }
        return (packets, bytes);
    }

    // ---- the tests ----

    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Reflector_SendsEveryFrameBack_WithTheMacsSwapped()
    {
        const int count = 50;
        using var env = KernelTestEnvironment.Create();
        var capture = env.Ns.Run(() => new PacketCapture(env.Veth0Index));
        var run = env.Ns.RunConcurrently(() => Reflect(KernelTestEnvironment.Veth1, count, new CancellationTokenSource(s_timeout).Token));
        WaitForAttach(env, run);
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        Assert.Equal(count, await run);
        byte[] swapped = [0x02, 0x00, 0x5b, 0x9f, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        var frames = capture.Receive(count, s_timeout, f => f.AsSpan(0, 12).SequenceEqual(swapped));
        capture.Dispose();
        Assert.Equal(count, frames.Count);
        env.AssertNoFdLeaks();
    }

    [Fact]
    public async Task Counter_CountsEveryFrameAndByte()
    {
        const int count = 80;
        using var env = KernelTestEnvironment.Create();
        var run = env.Ns.RunConcurrently(() => Count(KernelTestEnvironment.Veth1, TimeSpan.FromSeconds(2)));
        WaitForAttach(env, run);
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout, payloadBytes: 100)));
        var (packets, bytes) = await run;
        Assert.Equal(count, packets);
        Assert.Equal(count * (14 + 20 + 8 + 100), bytes);
        env.AssertNoFdLeaks();
    }

    /// <summary>Frames reach the socket once the redirect program is attached (it is attached after the socket is registered).</summary>
    private static void WaitForAttach(KernelTestEnvironment env, Task run)
    {
        var deadline = DateTime.UtcNow + s_timeout;
        while (!run.IsCompleted && DateTime.UtcNow < deadline && env.Ns.Run(() => SharpBpf.Linux.Links.XdpHook.Query(env.Veth1Index).Programs.Count) == 0)
            Thread.Sleep(10);
        Thread.Sleep(50);
    }
}
