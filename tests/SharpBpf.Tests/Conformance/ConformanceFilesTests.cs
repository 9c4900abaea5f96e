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
