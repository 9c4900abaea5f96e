using System.Text.Json;

namespace SharpBpf.Cli.Tests;

public class VerifyAndDisasmCommandTests
{
    private static string Fixture(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir!.FullName, "SharpBpf.slnx")))
            dir = dir.Parent;
        return Path.Combine(dir.FullName, "tests", "testdata", name);
    }

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await CliApp.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task DisasmPrintsLlvmSyntaxWithSourceLines()
    {
        var (code, output, _) = await Run("disasm", Fixture("xdp_maps.o"), "--source");
        Assert.Equal(0, code);
        Assert.Contains("xdp_count:", output);
        Assert.Contains("r6 = *(u32 *)(r1 + 4)", output);
        Assert.Contains("; ./src/xdp_maps.c:", output);
    }

    [Fact]
    public async Task DisasmJsonNamesEveryInstructionAndItsReference()
    {
        var (code, output, _) = await Run("disasm", Fixture("xdp_maps.o"), "--json", "--syntax", "asm");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var program = doc.RootElement[0];
        Assert.Equal("xdp_count", program.GetProperty("name").GetString());
        var instructions = program.GetProperty("instructions").EnumerateArray().ToList();
        Assert.True(instructions.Count > 10);
        Assert.Contains(instructions, i => i.GetProperty("reference").GetString() == ".data");
        Assert.Equal("exit", instructions[^1].GetProperty("text").GetString());
    }

    [Fact]
    public async Task DisasmOfAnUnknownProgramIsRefusedWithTheNamesItHas()
    {
        var (code, _, error) = await Run("disasm", Fixture("xdp_maps.o"), "--program", "nope");
        Assert.Equal(1, code);
        Assert.Contains("no program 'nope'", error);
        Assert.Contains("xdp_count", error);
    }

    [Fact]
    public async Task VerifyOfAnObjectWhoseProgramsAreAllSkippedIsRefused()
    {
        var (code, output, error) = await Run("verify", Fixture("unknown_section.o"));
        Assert.Equal(1, code);
        Assert.Contains("program 'xdp_pass_func' skipped", error);
        Assert.Contains("no program was verified", error);
        Assert.Equal("", output.Trim());
    }

    [Fact]
    public async Task VerifyAcceptsASafeProgram()
    {
        var (code, output, _) = await Run("verify", Fixture("xdp_maps.o"), "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.True(doc.RootElement[0].GetProperty("accepted").GetBoolean());
        Assert.True(doc.RootElement[0].GetProperty("processedInstructions").GetInt32() > 0);
    }

    [Fact]
    public async Task VerifyOfABrokenFileSaysWhatIsWrong()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sharpbpf-broken-{Guid.NewGuid():N}.o");
        File.WriteAllBytes(path, [0x7f, (byte)'E', (byte)'L', (byte)'F', 1, 2, 3]);
        try
        {
            var (code, _, error) = await Run("verify", path);
            Assert.Equal(1, code);
            Assert.Contains(Path.GetFileName(path), error);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
