using System.Buffers.Binary;
using SharpBpf.Linux.AfXdp;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.AfXdp;

/// <summary>AF_XDP sockets on a veth pair in the test's own namespace: frames sent on veth0 arrive on veth1.</summary>
[Collection("AF_XDP")] // one at a time: the fd-leak check sees the whole process
public sealed class XskSocketTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);
    private const int PayloadBytes = 64;

    /// <summary>Receives until <paramref name="expected"/> frames came or the time ran out; calls
    /// <paramref name="onFrame"/> on each and refills the ring with them.</summary>
    internal static int ReceiveAll(XskSocket socket, int expected, TimeSpan timeout, Action<XdpDesc, Span<byte>>? onFrame = null, bool refill = true)
    {
        Span<XdpDesc> batch = stackalloc XdpDesc[64];
        var deadline = DateTime.UtcNow + timeout;
        int received = 0;
        while (received < expected && DateTime.UtcNow < deadline)
        {
            int n = socket.Receive(batch);
            if (n == 0)
            {
                socket.WaitForReceive(TimeSpan.FromMilliseconds(50));
                continue;
            }
            for (int i = 0; i < n; i++)
                onFrame?.Invoke(batch[i], socket.Data(batch[i]));
            if (refill)
                Assert.Equal(n, socket.Refill(batch[..n]));
            received += n;
        }
        return received;
    }

    [Theory]
    [InlineData(XskBindMode.Copy, false)]
    [InlineData(XskBindMode.Auto, false)]
    [InlineData(XskBindMode.Copy, true)]
    public void NFramesSent_ExactlyNReceived_WithTheirBytes(XskBindMode mode, bool unaligned)
    {
        const int count = 500;
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var umem = new Umem(new UmemOptions { FrameCount = 2048, Unaligned = unaligned, FrameSize = unaligned ? 3000 : 2048, Headroom = 64 });
            using var socket = XskSocket.Create(KernelTestEnvironment.Veth1, 0, umem, new XskSocketOptions { Mode = mode });
            Assert.False(socket.IsZeroCopy);
            using var redirect = XskRedirect.Load();
            redirect.Register(socket);
            redirect.Attach(env.Veth1Index);

            Assert.Equal(count, Traffic.SendUdp(env.Veth0Index, count, s_timeout, PayloadBytes));
            var seen = new bool[count];
            int received = ReceiveAll(socket, count, s_timeout, (desc, data) =>
            {
                int sequence = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(data[42..]);
                Assert.InRange(sequence, 0, count - 1);
                Assert.False(seen[sequence], $"frame {sequence} arrived twice");
                seen[sequence] = true;
                Assert.True(Traffic.BuildUdpFrame(PayloadBytes, sequence).AsSpan().SequenceEqual(data), $"frame {sequence} differs");
                // The kernel puts the data after the UMEM headroom and XDP's 256 bytes.
                Assert.Equal(64ul + 256, umem.DataOffset(desc.Address) - umem.ChunkAddress(desc.Address));
            });
            Assert.Equal(count, received);
            // Nothing beyond the N frames: the ring stays empty.
            Assert.False(socket.WaitForReceive(TimeSpan.FromMilliseconds(200)));
            var stats = socket.GetStatistics();
            Assert.Equal(0ul, stats.RxDropped);
            Assert.Equal(0ul, stats.RxInvalidDescriptors);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void ZeroCopyOnVeth_FallsBackToCopy_WithANotice()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var umem = new Umem(new UmemOptions { FrameCount = 256 });
            using var socket = XskSocket.Create(env.Veth1Index, 0, umem, new XskSocketOptions { Mode = XskBindMode.ZeroCopy, FillRingSize = 256, CompletionRingSize = 256, RxRingSize = 256, TxRingSize = 256 });
            Assert.False(socket.IsZeroCopy);
            Assert.NotNull(socket.Notice);
            Assert.Contains("copy mode", socket.Notice);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void EmptyFillRing_DropsAreCounted()
    {
        const int count = 50, fill = 8;
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var umem = new Umem(new UmemOptions { FrameCount = 64, FrameSize = 2048 });
            using var socket = XskSocket.Create(env.Veth1Index, 0, umem, new XskSocketOptions { InitialFillFrames = fill, FillRingSize = 16, CompletionRingSize = 16, RxRingSize = 64, TxRingSize = 16 });
            using var redirect = XskRedirect.Load();
            redirect.Register(socket);
            redirect.Attach(env.Veth1Index);
            Assert.Equal(count, Traffic.SendUdp(env.Veth0Index, count, s_timeout));
            Assert.Equal(fill, ReceiveAll(socket, count, TimeSpan.FromSeconds(1), refill: false));
            var stats = socket.GetStatistics();
            Assert.Equal((ulong)(count - fill), stats.RxDropped);
            Assert.True(stats.RxFillRingEmpty > 0, $"fill-ring-empty count {stats.RxFillRingEmpty}");
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void TransmittedEcho_ArrivesAtThePeer()
    {
        const int count = 100;
        byte[] marker = [0x02, 0xec, 0x40, 0, 0, 0x01];
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var capture = new PacketCapture(env.Veth0Index);
            using var umem = new Umem(new UmemOptions { FrameCount = 1024, FrameSize = 2048 });
            using var socket = XskSocket.Create(env.Veth1Index, 0, umem, new XskSocketOptions { Mode = XskBindMode.Copy });
            using var redirect = XskRedirect.Load();
            redirect.Register(socket);
            redirect.Attach(env.Veth1Index);
            Assert.Equal(count, Traffic.SendUdp(env.Veth0Index, count, s_timeout, PayloadBytes));

            // Reflect: mark the source MAC and send each frame back out of veth1, so it arrives on veth0.
            Span<XdpDesc> batch = stackalloc XdpDesc[32];
            int echoed = 0, completed = 0;
            var deadline = DateTime.UtcNow + s_timeout;
            while ((echoed < count || completed < count) && DateTime.UtcNow < deadline)
            {
                int n = socket.Receive(batch);
                for (int i = 0; i < n; i++)
                    marker.CopyTo(socket.Data(batch[i])[6..]);
                int sent = 0;
                while (sent < n && DateTime.UtcNow < deadline)
                    sent += socket.Transmit(batch[sent..n]);
                echoed += sent;
                completed += socket.RecycleCompleted();
                if (n == 0)
                    Thread.Sleep(1);
            }
            Assert.Equal(count, echoed);
            Assert.Equal(count, completed);

            var frames = capture.Receive(count, s_timeout, f => f.AsSpan(6, 6).SequenceEqual(marker));
            Assert.Equal(count, frames.Count);
            var sequences = frames.Select(f => System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(42))).Order().ToArray();
            Assert.Equal(Enumerable.Range(0, count), sequences);
            foreach (var f in frames)
            {
                var expected = Traffic.BuildUdpFrame(PayloadBytes, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(42)));
                marker.CopyTo(expected, 6);
                Assert.Equal(expected, f);
            }
            Assert.Equal(0ul, socket.GetStatistics().TxInvalidDescriptors);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void SharedUmem_TwoDevices_EachSocketReceivesIntoTheSameArea()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var umem = new Umem(new UmemOptions { FrameCount = 1024, FrameSize = 2048 });
            var small = new XskSocketOptions { FillRingSize = 256, CompletionRingSize = 256, RxRingSize = 256, TxRingSize = 256 };
            using var a = XskSocket.Create(env.Veth1Index, 0, umem, small);
            using var b = XskSocket.Create(env.Veth0Index, 0, umem, small);
            Assert.False(a.SharesUmem);
            Assert.True(b.SharesUmem);
            using var ra = XskRedirect.Load();
            using var rb = XskRedirect.Load();
            ra.Register(a);
            ra.Attach(env.Veth1Index);
            rb.Register(b);
            rb.Attach(env.Veth0Index);

            Assert.Equal(30, Traffic.SendUdp(env.Veth0Index, 30, s_timeout));   // arrives on veth1 -> a
            Assert.Equal(20, Traffic.SendUdp(env.Veth1Index, 20, s_timeout));   // arrives on veth0 -> b
            var addresses = new HashSet<ulong>();
            Assert.Equal(30, ReceiveAll(a, 30, s_timeout, (d, _) => Assert.True(addresses.Add(umem.ChunkAddress(d.Address)))));
            Assert.Equal(20, ReceiveAll(b, 20, s_timeout, (d, _) => Assert.True(addresses.Add(umem.ChunkAddress(d.Address)))));
            Assert.All(addresses, x => Assert.InRange(x, 0ul, (ulong)umem.Length - 2048));
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void SharedUmem_StaysMappedUntilItsLastSocket_AndOutlivesTheSocketThatRegisteredIt()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            var small = new XskSocketOptions { FillRingSize = 256, CompletionRingSize = 256, RxRingSize = 256, TxRingSize = 256 };
            var umem = new Umem(new UmemOptions { FrameCount = 1024, FrameSize = 2048 });
            var mapping = umem.Mapping;
            var first = XskSocket.Create(env.Veth1Index, 0, umem, small);   // registers the UMEM
            var second = XskSocket.Create(env.Veth0Index, 0, umem, small);  // shares it
            first.Dispose();
            // The kernel's UMEM lives on in the second socket: a new socket shares it through that one.
            var third = XskSocket.Create(env.Veth1Index, 0, umem, small);
            Assert.True(third.SharesUmem);
            Assert.Equal(2, umem.SocketCount);

            umem.Dispose();
            Assert.Throws<ObjectDisposedException>(() => XskSocket.Create(env.Veth1Index, 1, umem, small));
            Assert.True(IsMapped(mapping.Start), "the UMEM was unmapped while two sockets used it");
            using (var r1 = XskRedirect.Load())
            using (var r0 = XskRedirect.Load())
            {
                r1.Register(third);
                r1.Attach(env.Veth1Index);
                r0.Register(second);
                r0.Attach(env.Veth0Index);
                Assert.Equal(30, Traffic.SendUdp(env.Veth0Index, 30, s_timeout));   // arrives on veth1 -> third
                Assert.Equal(20, Traffic.SendUdp(env.Veth1Index, 20, s_timeout));   // arrives on veth0 -> second
                Assert.Equal(30, ReceiveAll(third, 30, s_timeout, (_, d) => Assert.Equal(Traffic.BuildUdpFrame(64, BinaryPrimitives.ReadInt32BigEndian(d[42..])), d.ToArray())));
                Assert.Equal(20, ReceiveAll(second, 20, s_timeout, (_, d) => Assert.Equal(Traffic.BuildUdpFrame(64, BinaryPrimitives.ReadInt32BigEndian(d[42..])), d.ToArray())));
            }
            third.Dispose();
            Assert.True(IsMapped(mapping.Start), "the UMEM was unmapped while a socket used it");
            second.Dispose();
            Assert.Equal(0, umem.SocketCount);
            Assert.False(IsMapped(mapping.Start), "the UMEM stayed mapped after its last socket");
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void Umem_DisposedWithoutSockets_IsUnmappedAtOnce()
    {
        var umem = new Umem(new UmemOptions { FrameCount = 64, FrameSize = 2048 });
        var mapping = umem.Mapping;
        Assert.True(IsMapped(mapping.Start));
        umem.Dispose();
        umem.Dispose();
        Assert.False(IsMapped(mapping.Start));
    }

    [Fact]
    public async Task WaitForReceiveAsync_TimesOut_IsCancelled_AndWakesOnTraffic()
    {
        using var env = KernelTestEnvironment.Create();
        var (umem, socket, redirect) = env.Ns.Run(() =>
        {
            var u = new Umem(new UmemOptions { FrameCount = 256 });
            var s = XskSocket.Create(env.Veth1Index, 0, u, new XskSocketOptions { FillRingSize = 128, CompletionRingSize = 128, RxRingSize = 128, TxRingSize = 128 });
            var r = XskRedirect.Load();
            r.Register(s);
            r.Attach(env.Veth1Index);
            return (u, s, r);
        });
        try
        {
            Assert.False(await socket.WaitForReceiveAsync(TimeSpan.FromMilliseconds(150), TestContext.Current.CancellationToken));
            using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100)))
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => socket.WaitForReceiveAsync(Timeout.InfiniteTimeSpan, cts.Token));
            var waiting = socket.WaitForReceiveAsync(s_timeout, TestContext.Current.CancellationToken);
            env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, 1, s_timeout));
            Assert.True(await waiting);
            Span<XdpDesc> one = stackalloc XdpDesc[4];
            Assert.Equal(1, socket.Receive(one));
        }
        finally
        {
            env.Ns.Run(() => { redirect.Dispose(); socket.Dispose(); umem.Dispose(); });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void Teardown_AfterAnExceptionMidRun_LeavesNoSocketMapProgramOrMapping()
    {
        using var env = KernelTestEnvironment.Create();
        var linesBefore = ProcMapsLines();
        var mappings = new List<(nint Start, nuint Length)>();
        uint mapId = 0, programId = 0;
        env.Ns.Run(() =>
        {
            var error = Assert.Throws<InvalidOperationException>(void () =>
            {
                using var umem = new Umem(new UmemOptions { FrameCount = 512, FrameSize = 2048 });
                using var socket = XskSocket.Create(env.Veth1Index, 0, umem);
                using var redirect = XskRedirect.Load();
                mappings.Add(umem.Mapping);
                mappings.AddRange(socket.Mappings);
                mapId = redirect.Map.Id;
                programId = redirect.Program.Id;
                redirect.Register(socket);
                redirect.Attach(env.Veth1Index);
                Assert.Equal(10, Traffic.SendUdp(env.Veth0Index, 10, s_timeout));
                Assert.Equal(10, ReceiveAll(socket, 10, s_timeout));
                Assert.All(mappings, m => Assert.True(IsMapped(m.Start), $"0x{m.Start:x} is not mapped while in use"));
                throw new InvalidOperationException("mid-run failure");
            });
            Assert.Equal("mid-run failure", error.Message);
            Assert.Empty(XdpHook.Query(env.Veth1Index).Programs);
            // The queue is free again: a new socket binds (after EBUSY retries if the kernel is still releasing it).
            using (var umem = new Umem(new UmemOptions { FrameCount = 64, FrameSize = 2048 }))
            using (XskSocket.Create(env.Veth1Index, 0, umem, new XskSocketOptions { FillRingSize = 32, CompletionRingSize = 32, RxRingSize = 32, TxRingSize = 32 }))
            {
            }
        });
        env.AssertNoFdLeaks();
        Assert.All(mappings, m => Assert.False(IsMapped(m.Start), $"0x{m.Start:x} (+{m.Length} bytes) is still mapped"));
        Assert.Empty(ProcMapsLines().Where(l => l.Contains("socket:", StringComparison.Ordinal) || l.Contains("xdp", StringComparison.OrdinalIgnoreCase)).Except(linesBefore));
        // The kernel frees a program at once when its last reference goes, and the program's maps after an RCU grace
        // period: wait (bounded) for both ids to disappear.
        Assert.True(Gone(() => BpfProgram.FromId(programId).Dispose()), $"program id {programId} still exists");
        Assert.True(Gone(() => BpfMap.FromId(mapId).Dispose()), $"map id {mapId} still exists");
    }

    private static bool Gone(Action open)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (DateTime.UtcNow < deadline)
        {
            try { open(); }
            catch (BpfSyscallException) { return true; }
            Thread.Sleep(20);
        }
        return false;
    }

    private static string[] ProcMapsLines() => File.ReadAllLines("/proc/self/maps");

    /// <summary>True when /proc/self/maps has a mapping holding <paramref name="address"/>.</summary>
    private static bool IsMapped(nint address) => ProcMapsLines().Any(line =>
    {
        var range = line.Split(' ', 2)[0].Split('-');
        ulong start = Convert.ToUInt64(range[0], 16), end = Convert.ToUInt64(range[1], 16);
        return (ulong)address >= start && (ulong)address < end;
    });
}
