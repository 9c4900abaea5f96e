using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

public sealed class AsmCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sharpbpf-asm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public async Task PrintsHexOneSlotALine()
    {
        var path = Write("p.s", "mov32 %r0, 1\nlddw %r1, 0x1122334455667788\nexit\n");
        var (code, stdout, _) = await Run("asm", path);
        Assert.Equal(0, code);
        Assert.Equal("b4 00 00 00 01 00 00 00\n18 01 00 00 88 77 66 55\n00 00 00 00 44 33 22 11\n95 00 00 00 00 00 00 00\n", stdout);
    }

    [Fact]
    public async Task WritesRawBytesWithOutputOption()
    {
        var path = Write("p.s", "mov %r0, 2\nexit\n");
        var bin = Path.Combine(_dir, "p.bin");
        var (code, stdout, _) = await Run("asm", path, "-o", bin);
        Assert.Equal(0, code);
        Assert.Equal("", stdout);
        Assert.Equal(Convert.FromHexString("b7000000020000009500000000000000"), await File.ReadAllBytesAsync(bin, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task AssemblyErrorsExitOneWithLineAndColumn()
    {
        var path = Write("bad.s", "mov %r0, 1\n  mvo %r0, 2\nexit\n");
        var (code, _, stderr) = await Run("asm", path);
        Assert.Equal(CliApp.ExitRefused, code);
        Assert.Equal("bad.s:2:3: error: unknown mnemonic 'mvo'", stderr.Trim());
    }

    [Fact]
    public async Task InvalidProgramsExitOneUnlessValidationIsOff()
    {
        var path = Write("frag.s", "mov %r0, 1\n");
        var (code, _, stderr) = await Run("asm", path);
        Assert.Equal(CliApp.ExitRefused, code);
        Assert.Contains("must end with exit", stderr);
        (code, var stdout, _) = await Run("asm", path, "--no-validate");
        Assert.Equal(0, code);
        Assert.Equal("b7 00 00 00 01 00 00 00\n", stdout);
    }

    [Fact]
    public async Task MissingFileExitsOne()
    {
        var (code, _, stderr) = await Run("asm", Path.Combine(_dir, "none.s"));
        Assert.Equal(CliApp.ExitRefused, code);
        Assert.Contains("cannot read none.s", stderr);
    }

    [Fact]
    public async Task HelpAndUsageErrors()
    {
        var (code, stdout, _) = await Run("asm", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--output", stdout);
        Assert.Equal(CliApp.ExitUsage, (await Run("asm")).Code);
        Assert.Equal(CliApp.ExitUsage, (await Run("asm", "a.s", "--bogus")).Code);
    }
}
