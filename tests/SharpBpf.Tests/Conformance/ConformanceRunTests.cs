using SharpBpf.Tests.Support;
using SharpBpf.Vm;

namespace SharpBpf.Tests.Conformance;

/// <summary>Every bpf_conformance file on the interpreter: positives must give their r0, negatives must be refused.</summary>
public class ConformanceRunTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        if (TestPaths.ConformanceDir is not { } dir)
        {
            data.Add("");
            return data;
        }
        foreach (var file in Directory.EnumerateFiles(dir, "*.data", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(dir, file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void FileRunsOnTheInterpreter(string file)
    {
        if (TestPaths.ConformanceDir is not { } dir)
        {
            Assert.Skip("the bpf_conformance vectors are absent (../shared/bpf_conformance or SHARPBPF_SHARED)");
            return;
        }
        var outcome = ConformanceRunner.RunFile(Path.Combine(dir, file), VmEngine.Interpreter);
        if (outcome.Verdict == ConformanceVerdict.Skipped)
            Assert.Skip($"{file}: {outcome.Detail}");
        Assert.True(outcome.Verdict == ConformanceVerdict.Passed, $"{file}: {outcome.Detail}");
    }

    [Fact]
    public void ThereAre313PositiveAnd60NegativeFiles()
    {
        if (TestPaths.ConformanceDir is not { } dir)
        {
            Assert.Skip("the bpf_conformance vectors are absent (../shared/bpf_conformance or SHARPBPF_SHARED)");
            return;
        }
        Assert.Equal(313, Directory.GetFiles(dir, "*.data").Length);
        Assert.Equal(60, Directory.GetFiles(Path.Combine(dir, "negative"), "*.data").Length);
    }
}
