using System.Text.RegularExpressions;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests;

public class TestRunTests
{
    private static byte[] Frame(int length)
    {
        var p = new byte[length];
        for (int i = 0; i < 6; i++)
        {
            p[i] = (byte)(0x10 + i);     // destination MAC
            p[6 + i] = (byte)(0x20 + i); // source MAC
        }
        p[12] = 0x08; // IPv4
        p[14] = 0x45;
        p[22] = 64;   // TTL
        p[23] = 17;   // UDP
        for (int i = 34; i < length; i++)
            p[i] = (byte)i;
        return p;
    }

    [Theory]
    [InlineData("bench/xdp_mac_swap.o")]
    [InlineData("bench/xdp_parse.o")]
    [InlineData("bench/xdp_drop.o")]
    public void KernelAnswersAreTheSameThroughSharpBpfAndBpftool(string obj)
    {
        KernelTest.RequireBpf();
        if (!File.Exists("/usr/sbin/bpftool") && !File.Exists("/usr/bin/bpftool"))
            Assert.Skip("bpftool is not installed (apt-get install bpftool) to compare with");
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var frame = Frame(128);
        using var c = BpfCollection.Load(ObjectFile.Open(Repo.Programs(obj)), new BpfCollectionOptions { PinDirectory = fs.Path });
        var program = c.Programs.Values.First();
        var ours = program.TestRun(new TestRunOptions { Data = frame });

        var pin = Path.Combine(fs.Path, "prog");
        program.Pin(pin);
        var dataIn = Path.Combine(fs.Path, "..", Path.GetFileName(fs.Path) + ".in");
        var dataOut = Path.Combine(fs.Path, "..", Path.GetFileName(fs.Path) + ".out");
        try
        {
            File.WriteAllBytes(dataIn, frame);
            var (code, output) = Bpffs.Run("bpftool", $"prog run pinned {pin} data_in {dataIn} data_out {dataOut} repeat 1");
            Assert.True(code == 0, "bpftool prog run failed:\n" + output);
            var m = Regex.Match(output, @"Return value: (\d+)");
            Assert.True(m.Success, output);
            Assert.Equal(ulong.Parse(m.Groups[1].Value), ours.ReturnValue);
            Assert.Equal(File.ReadAllBytes(dataOut), ours.DataOut);
        }
        finally
        {
            File.Delete(dataIn);
            File.Delete(dataOut);
        }
    }

    [Fact]
    public void RepeatsAccumulateAndContextComesBack()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var c = BpfCollection.Load(ObjectFile.Open(Repo.Programs("bench/xdp_mac_swap.o")));
        var program = c.Programs.Values.First();
        var frame = Frame(64);
        // The program swaps the MACs and decrements the TTL, on the same buffer each repeat: an odd number of
        // runs leaves the addresses swapped, an even number restores them, and the TTL drops by the count.
        var once = program.TestRun(new TestRunOptions { Data = frame, Repeat = 3 });
        var twice = program.TestRun(new TestRunOptions { Data = frame, Repeat = 4 });
        Assert.Equal(frame[6..12], once.DataOut[0..6]);
        Assert.Equal(frame[0..12], twice.DataOut[0..12]);
        Assert.Equal(64 - 3, once.DataOut[22]);
        Assert.Equal(64 - 4, twice.DataOut[22]);
        Assert.True(once.NanosecondsPerRun >= 0);

        var ctx = new byte[24]; // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
        BitConverter.GetBytes(frame.Length).CopyTo(ctx, 4); // the kernel wants data_end = the packet's length
        var withCtx = program.TestRun(new TestRunOptions { Data = frame, Context = ctx });
        Assert.NotNull(withCtx.ContextOut);
        Assert.Equal(24, withCtx.ContextOut!.Length);
        Assert.Equal(once.ReturnValue, withCtx.ReturnValue);
    }
}
