using System.Buffers.Binary;
using System.Text.Json;
using SharpBpf.Cli;
using SharpBpf.Linux.AfXdp;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Vm;

namespace SharpBpf.Linux.Tests.AfXdp;

/// <summary>XDP programs of the managed VM run on live frames through AF_XDP (library and <c>sharpbpf xdp run-user</c>).</summary>
[Collection("AF_XDP")] // one at a time: the fd-leak check sees the whole process
public sealed class UserDatapathTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);
    internal static readonly byte[] Marker = [0x02, 0xec, 0x40, 0, 0, 0x02];

    /// <summary>drop_even drops the fixture's frames with an even sequence number and passes the rest; reflect marks
    /// the source MAC and sends the frame back (XDP_TX).</summary>
    internal const string Source = """
        #include <linux/bpf.h>
        #define SEC(n) __attribute__((section(n), used))
        SEC("xdp")
        int drop_even(struct xdp_md *ctx)
        {
            unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
            if (data + 46 > end)
                return XDP_PASS;
            return (data[45] & 1) ? XDP_PASS : XDP_DROP;
        }
        SEC("xdp")
        int reflect(struct xdp_md *ctx)
        {
            unsigned char *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
            if (data + 14 > end)
                return XDP_ABORTED;
            data[6] = 0x02; data[7] = 0xec; data[8] = 0x40; data[9] = 0; data[10] = 0; data[11] = 0x02;
            return XDP_TX;
        }
        char LICENSE[] SEC("license") = "GPL";
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("sharpbpf-afxdp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (VmCollection, VmProgram) Load(string program)
    {
        var spec = ObjectFile.Open(Repo.CompileBpf(_dir, "user_xdp", Source));
        var single = new CollectionSpec { License = spec.License };
        single.Programs.Add(spec.FindProgram(program)!);
        var collection = VmCollection.Load(single);
        return (collection, collection.Program(program));
    }

    [Fact]
    public async Task DropProgram_DropsExactlyTheEvenFrames_AndPassesTheRest()
    {
        const int count = 300;
        var (collection, program) = Load("drop_even");
        using var _ = collection;
        using var env = KernelTestEnvironment.Create();
        using var ready = new ManualResetEventSlim();
        var run = env.Ns.RunConcurrently(() => UserXdpDatapath.Run(env.Veth1Index, program,
            new UserXdpOptions { Count = count, Duration = s_timeout, Mode = XskBindMode.Copy, FrameCount = 1024, Ready = ready.Set }));
        Assert.True(ready.Wait(s_timeout, TestContext.Current.CancellationToken) || run.IsCompleted, "the datapath did not start");
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        var counters = await run;
        Assert.Equal(count, counters.Received);
        Assert.Equal(count / 2, counters.Drop);
        Assert.Equal(count / 2, counters.Pass);
        Assert.Equal(0, counters.Aborted + counters.Tx + counters.Redirect);
        env.Ns.Run(() => Assert.Empty(XdpHook.Query(env.Veth1Index).Programs));
        env.AssertNoFdLeaks();
    }

    [Fact]
    public async Task TxProgram_SendsEachFrameBackToThePeer()
    {
        const int count = 100;
        var (collection, program) = Load("reflect");
        using var _ = collection;
        using var env = KernelTestEnvironment.Create();
        using var capture = env.Ns.Run(() => new PacketCapture(env.Veth0Index));
        using var ready = new ManualResetEventSlim();
        var run = env.Ns.RunConcurrently(() => UserXdpDatapath.Run(env.Veth1Index, program,
            new UserXdpOptions { Count = count, Duration = s_timeout, Mode = XskBindMode.Copy, FrameCount = 1024, Ready = ready.Set }));
        Assert.True(ready.Wait(s_timeout, TestContext.Current.CancellationToken) || run.IsCompleted, "the datapath did not start");
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        var counters = await run;
        Assert.Equal(count, counters.Tx);
        Assert.Equal(0, counters.TxFailed);
        var frames = capture.Receive(count, s_timeout, f => f.AsSpan(6, 6).SequenceEqual(Marker));
        Assert.Equal(Enumerable.Range(0, count), frames.Select(f => BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(42))).Order());
    }

    [Fact]
    public async Task Cli_RunUser_Json_CountsEveryVerdict()
    {
        const int count = 100;
        var path = Repo.CompileBpf(_dir, "user_xdp", Source);
        using var env = KernelTestEnvironment.Create();
        var run = env.Ns.RunConcurrently(() =>
        {
            var output = new StringWriter();
            var error = new StringWriter();
            var code = CliApp.RunAsync(["xdp", "run-user", "veth1", path, "--program", "drop_even", "--count", $"{count}", "--duration", "20", "--json"], output, error).GetAwaiter().GetResult();
            return (code, output.ToString(), error.ToString());
        });
        // Frames go to the socket once the redirect program is on veth1.
        var deadline = DateTime.UtcNow + s_timeout;
        while (!run.IsCompleted && DateTime.UtcNow < deadline && env.Ns.Run(() => XdpHook.Query(env.Veth1Index).Programs.Count) == 0)
            Thread.Sleep(20);
        Thread.Sleep(50); // the socket is registered before the attach; the attach's RCU grace period has passed here
        Assert.Equal(count, env.Ns.Run(() => Traffic.SendUdp(env.Veth0Index, count, s_timeout)));
        var (code, stdout, stderr) = await run;
        Assert.True(code == 0, stderr);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.Equal("veth1", root.GetProperty("interface").GetString());
        Assert.Equal("drop_even", root.GetProperty("program").GetString());
        Assert.Equal(count, root.GetProperty("received").GetInt64());
        var actions = root.GetProperty("actions");
        Assert.Equal(count / 2, actions.GetProperty("drop").GetInt64());
        Assert.Equal(count / 2, actions.GetProperty("pass").GetInt64());
        Assert.Equal(0, actions.GetProperty("aborted").GetInt64());
        Assert.Equal(0, root.GetProperty("passFailed").GetInt64());
    }
}
