using System.Buffers.Binary;
using System.Diagnostics;
using SharpBpf.Pcap;

namespace SharpBpf.Tests.Pcap;

/// <summary>Cross-checks with tcpdump: it reads what we write, we read what it writes (converted files and a real
/// capture from network namespaces this test creates and removes).</summary>
public class TcpdumpInteropTests
{
    private static string? FindTool(string name) =>
        new[] { "/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin" }
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static string Tcpdump()
    {
        var path = FindTool("tcpdump");
        if (path is null)
            Assert.Skip("tcpdump is not installed (apt-get install -y tcpdump)");
        return path;
    }

    private static (int Exit, string Out, string Err) Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 30 s");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>An Ethernet/IPv4/UDP frame with a valid IPv4 header checksum.</summary>
    internal static byte[] UdpFrame(int payloadLength, ushort port, byte fill)
    {
        var frame = new byte[14 + 20 + 8 + payloadLength];
        byte[] dst = [0x02, 0, 0, 0, 0, 2], src = [0x02, 0, 0, 0, 0, 1];
        dst.CopyTo(frame, 0);
        src.CopyTo(frame, 6);
        frame[12] = 0x08;
        var ip = frame.AsSpan(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payloadLength));
        ip[8] = 64;
        ip[9] = 17;
        byte[] sa = [10, 0, 0, 1], da = [10, 0, 0, 2];
        sa.CopyTo(ip[12..]);
        da.CopyTo(ip[16..]);
        uint sum = 0;
        for (var i = 0; i < 20; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(ip[i..]);
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~sum);
        var udp = frame.AsSpan(34, 8);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], port);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payloadLength));
        frame.AsSpan(42).Fill(fill);
        return frame;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TcpdumpReadsWhatWeWrite(bool nanoseconds)
    {
        var tcpdump = Tcpdump();
        var path = Path.Combine(Path.GetTempPath(), $"sharpbpf-w-{Guid.NewGuid():N}.pcap");
        try
        {
            using (var writer = PcapWriter.Create(path, nanosecondTimestamps: nanoseconds))
            {
                writer.Write(UdpFrame(10, 33333, 1), 1_700_000_000_123_456_789L);
                writer.Write(UdpFrame(100, 44444, 2), 1_700_000_001_000_000_001L);
                writer.Write(UdpFrame(0, 9, 3), 1_700_000_002_999_999_999L);
            }
            var (exit, output, error) = Run(tcpdump, "-r", path, "-nn", "-tt", "--time-stamp-precision", nanoseconds ? "nano" : "micro");
            Assert.True(exit == 0, error);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 3, output);
            Assert.StartsWith(nanoseconds ? "1700000000.123456789 IP 10.0.0.1.40000 > 10.0.0.2.33333" : "1700000000.123456 IP 10.0.0.1.40000 > 10.0.0.2.33333", lines[0]);
            Assert.StartsWith(nanoseconds ? "1700000001.000000001" : "1700000001.000000", lines[1]);
            Assert.Contains("10.0.0.2.44444", lines[1]);
            Assert.Contains("UDP, length 100", lines[1]);
            Assert.Contains("link-type EN10MB", error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WeReadWhatTcpdumpWrites()
    {
        var tcpdump = Tcpdump();
        var ours = Path.Combine(Path.GetTempPath(), $"sharpbpf-o-{Guid.NewGuid():N}.pcap");
        var theirs = Path.Combine(Path.GetTempPath(), $"sharpbpf-t-{Guid.NewGuid():N}.pcap");
        try
        {
            var frames = Enumerable.Range(0, 20).Select(i => UdpFrame(i * 13, (ushort)(1000 + i), (byte)i)).ToList();
            using (var writer = PcapWriter.Create(ours, nanosecondTimestamps: true))
                for (var i = 0; i < frames.Count; i++)
                    writer.Write(frames[i], 1_600_000_000_000_000_000L + i * 1_234_567L);
            // tcpdump rewrites the file with a filter (odd ports only) and nanosecond precision.
            var (exit, _, error) = Run(tcpdump, "-r", ours, "--time-stamp-precision", "nano", "-w", theirs, "udp[3] & 1 = 1");
            Assert.True(exit == 0, error);
            using var reader = PcapReader.Open(theirs);
            Assert.True(reader.NanosecondTimestamps);
            var packets = reader.ToList();
            Assert.Equal(10, packets.Count);
            for (var k = 0; k < packets.Count; k++)
            {
                var i = 2 * k + 1;
                Assert.Equal(frames[i], packets[k].Data);
                Assert.Equal(1_600_000_000_000_000_000L + i * 1_234_567L, packets[k].TimestampNanoseconds);
            }
        }
        finally
        {
            File.Delete(ours);
            File.Delete(theirs);
        }
    }

    [Fact]
    public async Task WeReadALiveCaptureFromOurOwnNamespaces()
    {
        var tcpdump = Tcpdump();
        var ip = FindTool("ip") ?? throw SkipException("the ip tool (iproute2) is not installed");
        var bash = FindTool("bash") ?? throw SkipException("bash is not installed");
        if (Environment.UserName != "root")
            Assert.Skip("creating network namespaces needs root");
        var id = $"{Environment.ProcessId % 10000}{Random.Shared.Next(100, 999)}";
        string nsA = $"sbpfpa{id}", nsB = $"sbpfpb{id}", vethA = $"spa{id}", vethB = $"spb{id}";
        var file = Path.Combine(Path.GetTempPath(), $"sharpbpf-cap-{id}.pcap");
        try
        {
            foreach (var args in new[]
            {
                new[] { "netns", "add", nsA }, ["netns", "add", nsB],
                ["link", "add", vethA, "netns", nsA, "type", "veth", "peer", "name", vethB, "netns", nsB],
                ["-n", nsA, "addr", "add", "10.211.0.1/24", "dev", vethA], ["-n", nsB, "addr", "add", "10.211.0.2/24", "dev", vethB],
                ["-n", nsA, "link", "set", vethA, "up"], ["-n", nsB, "link", "set", vethB, "up"],
            })
            {
                var (exit, _, error) = Run(ip, args);
                Assert.True(exit == 0, $"ip {string.Join(' ', args)}: {error}");
            }
            var info = new ProcessStartInfo(ip) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "netns", "exec", nsB, tcpdump, "-i", vethB, "-U", "-c", "3", "-w", file, "udp port 9" })
                info.ArgumentList.Add(a);
            using var capture = Process.Start(info)!;
            try
            {
                // Wait (bounded) until tcpdump listens, then send datagrams from the other namespace.
                var ct = TestContext.Current.CancellationToken;
                await capture.StandardError.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(15), ct);
                for (var i = 0; i < 6 && !capture.HasExited; i++)
                {
                    Run(ip, "netns", "exec", nsA, bash, "-c", $"echo sharpbpf-{i} > /dev/udp/10.211.0.2/9");
                    await Task.Delay(100, ct);
                }
                Assert.True(capture.WaitForExit(TimeSpan.FromSeconds(15)), "tcpdump did not see 3 packets");
            }
            finally
            {
                if (!capture.HasExited)
                    capture.Kill(entireProcessTree: true);
            }
            using var reader = PcapReader.Open(file);
            Assert.Equal(LinkType.Ethernet, reader.LinkType);
            var packets = reader.ToList();
            Assert.Equal(3, packets.Count);
            foreach (var p in packets)
            {
                Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(p.Data.AsSpan(12)));
                Assert.Equal(9, BinaryPrimitives.ReadUInt16BigEndian(p.Data.AsSpan(36)));
                Assert.StartsWith("sharpbpf-", System.Text.Encoding.ASCII.GetString(p.Data, 42, p.Data.Length - 42));
                Assert.InRange(p.Timestamp, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));
            }
        }
        finally
        {
            Run(ip, "netns", "del", nsA);
            Run(ip, "netns", "del", nsB);
            File.Delete(file);
        }
    }

    private static Exception SkipException(string reason)
    {
        Assert.Skip(reason);
        return new UnreachableException();
    }
}
