using SharpBpf.Asm;
using SharpBpf.Conformance;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Conformance;

/// <summary>Every bpf_conformance file is read, assembled and validated (or refused, for the negative ones).</summary>
public class ConformanceFilesTests
{
    private const string Absent = "(vectors absent)";

    /// <summary>
    /// Negative files that are well formed: they can only be refused when running or verifying them, so the
    /// assembler and validator must accept them (checked below, so this list stays honest).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> RefusedOnlyAtRunTime = new Dictionary<string, string>
    {
        ["error"] = "'or %r0, %r10' is well formed; only a verifier that tracks pointers refuses leaking the frame pointer",
        ["incorrect_return_value_high_bits"] = "a valid program whose expected result is deliberately wrong; only running it shows the mismatch",
    };

    public static TheoryData<string> PositiveFiles() => Files(negative: false);

    public static TheoryData<string> NegativeFiles() => Files(negative: true);

    private static TheoryData<string> Files(bool negative)
    {
        var data = new TheoryData<string>();
        var dir = TestPaths.ConformanceDir;
        if (dir is null)
        {
            data.Add(Absent);
            return data;
        }
        if (negative)
            dir = Path.Combine(dir, "negative");
        foreach (var file in Directory.GetFiles(dir, "*.data").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(file));
        return data;
    }

    private static string PathOf(string name, bool negative)
    {
        if (name == Absent)
            Assert.Skip($"the bpf_conformance vectors are not at {TestPaths.SharedDir}/bpf_conformance");
        return negative
            ? Path.Combine(TestPaths.ConformanceDir!, "negative", name)
            : Path.Combine(TestPaths.ConformanceDir!, name);
    }

    [Theory]
    [MemberData(nameof(PositiveFiles))]
    public void PositiveFileAssemblesAndValidates(string name)
    {
        var file = ConformanceFile.Load(PathOf(name, negative: false));
        Assert.Null(file.SkipReason);
        Assert.Null(file.AssemblyError);
        Assert.NotNull(file.Instructions);
        Assert.NotEmpty(file.Instructions);
        Assert.NotNull(file.ExpectedResult);
        InstructionValidator.Validate(file.Instructions);
        if (file.RawProgram is not null && file.AssemblySource is not null)
            Assert.Equal(file.RawProgram, InstructionCodec.Encode(Assembler.Assemble(file.AssemblySource)));
    }

    [Theory]
    [MemberData(nameof(NegativeFiles))]
    public void NegativeFileIsRefused(string name)
    {
        var file = ConformanceFile.Load(PathOf(name, negative: true));
        if (RefusedOnlyAtRunTime.ContainsKey(file.Name))
        {
            Assert.NotNull(file.Instructions);
            InstructionValidator.Validate(file.Instructions);
            return;
        }
        string reason = RefusalReason(file);
        Assert.False(string.IsNullOrWhiteSpace(reason));
        TestContext.Current.TestOutputHelper?.WriteLine($"{file.Name}: {reason}");
    }

    /// <summary>Why the file is refused before running: skipped, no program, assembly error or validation error.</summary>
    private static string RefusalReason(ConformanceFile file)
    {
        if (file.SkipReason is not null)
            return file.SkipReason;
        if (file.AssemblyError is not null)
            return file.AssemblyError.Message;
        if (file.Instructions is null)
            return "the file has no program";
        var e = Assert.ThrowsAny<InstructionException>(() =>
        {
            if (file.RawProgram is not null)
                InstructionValidator.ValidateBytes(file.RawProgram);
            else
                InstructionValidator.Validate(file.Instructions);
        });
        return e.Message;
    }
}

public class ConformanceFileParserTests
{
    [Fact]
    public void ReadsEverySection()
    {
        var file = ConformanceFile.Parse("""
            # header comment
            -- asm
            mov %r0, 1   # comment
            exit
            -- mem
            aa bb
            0c
            -- result
            0xffffffffffffffff
            -- c
            int main() { return -- x; }
            -- no register offset
            """, "sample");
        Assert.Equal("sample", file.Name);
        Assert.Null(file.SkipReason);
        Assert.Null(file.AssemblyError);
        Assert.Equal(2, file.Instructions!.Count);
        Assert.Equal(new byte[] { 0xaa, 0xbb, 0x0c }, file.Memory);
        Assert.Equal(ulong.MaxValue, file.ExpectedResult);
        Assert.False(file.ExpectsError);
    }

    [Fact]
    public void RawWinsOverAsmAndReadsWords()
    {
        var file = ConformanceFile.Parse("-- asm\nmov %r0, 7\nexit\n-- raw\n0x00000002000000b7\n95 00 00 00 00 00 00 00\n-- result\n2\n");
        Assert.Equal([Insn.Mov(Register.R0, 2), Insn.Exit()], file.Instructions);
        Assert.Equal(2UL, file.ExpectedResult);
    }

    [Fact]
    public void AssemblyErrorsAreKeptWithTheLineOfTheDataFile()
    {
        var file = ConformanceFile.Parse("# c\n# d\n-- asm\nmov %r0, 1\nmvo %r0, 2\nexit\n-- error\nbad\n");
        Assert.Null(file.Instructions);
        var e = Assert.IsType<AssemblerException>(file.AssemblyError);
        Assert.Equal(5, e.Line);
        Assert.Equal("bad", file.ExpectedError);
        Assert.True(file.ExpectsError);
    }

    [Fact]
    public void UnknownSectionsSkipTheFile()
    {
        var file = ConformanceFile.Parse("-- asm\nexit\n-- plugin_only\nx\n-- result\n0\n");
        Assert.Equal("unknown section '-- plugin_only'", file.SkipReason);
    }

    [Fact]
    public void ParseAcceptsAPathToo()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sharpbpf-{Guid.NewGuid():N}.data");
        File.WriteAllText(path, "-- asm\nmov32 %r0, 3\nexit\n-- result\n0x3\n");
        try
        {
            var file = ConformanceFile.Parse(path);
            Assert.Equal(Path.GetFileNameWithoutExtension(path), file.Name);
            Assert.Equal(3UL, file.ExpectedResult);
            Assert.Equal(2, file.Instructions!.Count);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
