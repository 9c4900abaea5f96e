using System.Text.Json;
using SharpBpf.Cli;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Links;

/// <summary><c>sharpbpf xdp attach|detach|status</c> run in-process on the fixture's namespace thread.</summary>
public sealed class XdpCliTests
{
    private static readonly string s_object = Path.Combine(RepoRoot(), "tests", "testdata", "xdp-attach", "xdp_count.o");

    [Fact]
    public void AttachStatusDetach_ByNetlink()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            var attach = Run("xdp", "attach", "veth1", s_object, "--program", "xdp_count", "--mode", "skb");
            Assert.Equal(0, attach.Code);
            Assert.Matches(@"^attached program 'xdp_count' \(id \d+\) to veth1 in skb mode by netlink\n$", attach.Out);

            var table = Run("xdp", "status");
            Assert.Equal(0, table.Code);
            Assert.Contains("xdp_count", table.Out);
            Assert.Contains("netlink", table.Out);

            var json = Run("xdp", "status", "--json");
            Assert.Equal(0, json.Code);
            using var document = JsonDocument.Parse(json.Out);
            var interfaces = document.RootElement.GetProperty("interfaces").EnumerateArray().ToList();
            Assert.Equal(["lo", "veth0", "veth1"], interfaces.Select(i => i.GetProperty("name").GetString()!).Order().ToArray());
            var program = interfaces.Single(i => i.GetProperty("name").GetString() == "veth1").GetProperty("programs").EnumerateArray().Single();
            Assert.Equal("skb", program.GetProperty("mode").GetString());
            Assert.Equal("xdp_count", program.GetProperty("name").GetString());
            Assert.Equal("netlink", program.GetProperty("attachedBy").GetString());
            Assert.Equal(JsonValueKind.Null, program.GetProperty("linkId").ValueKind);
            Assert.Matches("^[0-9a-f]{16}$", program.GetProperty("tag").GetString()!);

            var detach = Run("xdp", "detach", "veth1");
            Assert.Equal(0, detach.Code);
            Assert.StartsWith("detached program ", detach.Out);
            Assert.Equal("no XDP program attached to veth1\n", Run("xdp", "status", "veth1").Out);
            Assert.Equal("no XDP program attached to veth1\n", Run("xdp", "detach", "veth1").Out);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void PinnedLink_OutlivesTheCommand_ReplaceKeepsTheLink_NetlinkDetachIsRefused()
    {
        using var env = KernelTestEnvironment.Create();
        var pinDir = Path.Combine(env.BpfFs, "xdp");
        var pin = Path.Combine(pinDir, "xdp_link_veth1");
        env.Ns.Run(() =>
        {
            var attach = Run("xdp", "attach", "veth1", s_object, "--program", "xdp_count", "--mode", "native", "--pin", pinDir);
            Assert.Equal(0, attach.Code);
            var match = System.Text.RegularExpressions.Regex.Match(attach.Out,
                @"^attached program 'xdp_count' \(id \d+\) to veth1 in native mode by bpf_link (\d+), pinned at (.+)\n$");
            Assert.True(match.Success, attach.Out);
            var linkId = match.Groups[1].Value;
            Assert.Equal(pin, match.Groups[2].Value);
            Assert.True(File.Exists(pin));

            // The command has returned and closed its fds; the pinned link still holds the program.
            var status = Run("xdp", "status", "veth1");
            Assert.Contains("bpf_link", status.Out);
            Assert.Contains(linkId, status.Out);

            var refused = Run("xdp", "detach", "veth1", "--netlink");
            Assert.Equal(CliApp.ExitRefused, refused.Code);
            Assert.StartsWith($"sharpbpf xdp: a bpf_link owns this hook (link id {linkId}): detach it with `sharpbpf xdp detach veth1` or remove its pin", refused.Err);

            var replace = Run("xdp", "attach", "veth1", s_object, "--program", "xdp_pass", "--replace");
            Assert.Equal(0, replace.Code);
            Assert.Contains($"in native mode by bpf_link {linkId}", replace.Out);
            Assert.Contains("xdp_pass", Run("xdp", "status", "veth1").Out);

            File.Delete(pin);
            // The link goes (and the program with it) once the kernel has freed the pin's inode, after an RCU grace period.
            Assert.True(XdpAttachTests.Eventually(() => Run("xdp", "status", "veth1").Out == "no XDP program attached to veth1\n"));
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void Refusals_AreOneSentence_WithTheRightExitCode()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            var unknown = Run("xdp", "attach", "eth9", s_object, "--program", "xdp_pass");
            Assert.Equal((CliApp.ExitRefused, "sharpbpf xdp: no interface named 'eth9'\n"), (unknown.Code, unknown.Err));

            var ambiguous = Run("xdp", "attach", "veth1", s_object);
            Assert.Equal(CliApp.ExitUsage, ambiguous.Code);
            Assert.Contains("choose one with --program", ambiguous.Err);

            var badMode = Run("xdp", "attach", "veth1", s_object, "--mode", "fast");
            Assert.Equal(CliApp.ExitUsage, badMode.Code);

            var pinAndNetlink = Run("xdp", "attach", "veth1", s_object, "--program", "xdp_pass", "--netlink", "--pin", env.BpfFs);
            Assert.Equal(CliApp.ExitUsage, pinAndNetlink.Code);

            Assert.Equal(0, Run("xdp", "attach", "veth1", s_object, "--program", "xdp_pass", "--mode", "native").Code);
            var mix = Run("xdp", "attach", "veth1", s_object, "--program", "xdp_count", "--mode", "skb");
            Assert.Equal(CliApp.ExitRefused, mix.Code);
            Assert.StartsWith("sharpbpf xdp: native and generic XDP cannot be attached at the same time", mix.Err);
            Assert.Single(mix.Err.TrimEnd('\n').Split('\n'));

            var hw = Run("xdp", "attach", "veth0", s_object, "--program", "xdp_pass", "--mode", "hw");
            Assert.Equal(CliApp.ExitRefused, hw.Code);
            Assert.Contains("not supported by the veth driver of veth0", hw.Err);
        });
        env.AssertNoFdLeaks();
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        // The xdp actions are synchronous, so they run on this (namespace) thread.
        var code = CliApp.RunAsync(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString().Replace("\r\n", "\n", StringComparison.Ordinal), error.ToString());
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root above " + AppContext.BaseDirectory);
    }
}
