using System.Text.Json;
using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

public class InspectCommandTests
{
    private static string Fixture(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return Path.Combine(dir.FullName, "tests", "testdata", name + ".o");
        }
        throw new InvalidOperationException("cannot find the repository root");
    }

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public async Task TablesNameProgramsMapsLicenseAndBtf()
    {
        var (code, output, _) = await Run("inspect", Fixture("xdp_maps"));
        Assert.Equal(0, code);
        Assert.Contains("license \"GPL\"", output);
        Assert.Contains("xdp_count", output);
        Assert.Contains("./src/xdp_maps.c", output);
        Assert.Contains("flows", output);
        Assert.Contains("PercpuArray", output);
        Assert.Contains("BTF: 47 types", output);
        Assert.Contains("26 line info", output);
    }

    [Fact]
    public async Task JsonIsStableAndComplete()
    {
        var (code, output, _) = await Run("inspect", Fixture("map_in_map"), "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal("map_in_map.o", root.GetProperty("file").GetString());
        Assert.Equal("GPL", root.GetProperty("license").GetString());
        var programs = root.GetProperty("programs").EnumerateArray().ToList();
        Assert.Equal(["tail_target", "xdp_outer"], programs.Select(p => p.GetProperty("name").GetString()));
        var outer = programs[1];
        Assert.Equal("xdp", outer.GetProperty("section").GetString());
        Assert.Equal("Xdp", outer.GetProperty("type").GetString());
        Assert.Equal(50, outer.GetProperty("instructions").GetInt32());
        Assert.Equal("./src/map_in_map.c", outer.GetProperty("sourceFile").GetString());

        var maps = root.GetProperty("maps").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        var pinned = maps["pinned_counts"];
        Assert.Equal("Hash", pinned.GetProperty("type").GetString());
        Assert.Equal(4u, pinned.GetProperty("keySize").GetUInt32());
        Assert.Equal(8u, pinned.GetProperty("valueSize").GetUInt32());
        Assert.Equal(128u, pinned.GetProperty("maxEntries").GetUInt32());
        Assert.Equal(0u, pinned.GetProperty("flags").GetUInt32());
        Assert.Equal("ByName", pinned.GetProperty("pinning").GetString());
        Assert.Equal("Array", maps["outer"].GetProperty("innerMap").GetProperty("type").GetString());
        var slots = maps["outer"].GetProperty("initialReferences").EnumerateArray().Select(r => (r.GetProperty("key").GetUInt32(), r.GetProperty("name").GetString())).ToList();
        Assert.Equal([(0u, "inner_a"), (2u, "inner_b")], slots);

        var btf = root.GetProperty("btf");
        Assert.Equal(63, btf.GetProperty("types").GetInt32());
        Assert.Equal(8, btf.GetProperty("kinds").GetProperty("Struct").GetInt32());
        Assert.Equal(27, btf.GetProperty("lineInfos").GetInt32());
    }

    [Fact]
    public async Task BadFileExitsOneWithAClearMessage()
    {
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, [0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1], TestContext.Current.CancellationToken);
            var (code, output, error) = await Run("inspect", path);
            Assert.Equal(CliApp.ExitRefused, code);
            Assert.Equal("", output);
            Assert.Contains("shorter than an ELF64 header", error);
            Assert.Contains(Path.GetFileName(path), error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task MissingFileExitsOne()
    {
        var (code, _, error) = await Run("inspect", Path.Combine(Path.GetTempPath(), "sharpbpf-missing.o"));
        Assert.Equal(CliApp.ExitRefused, code);
        Assert.Contains("no such file", error);
    }

    [Fact]
    public async Task MissingArgumentIsAUsageError()
    {
        var (code, _, _) = await Run("inspect");
        Assert.Equal(CliApp.ExitUsage, code);
    }

    [Fact]
    public async Task HelpDescribesTheCommand()
    {
        var (code, output, _) = await Run("inspect", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--json", output);
    }
}
