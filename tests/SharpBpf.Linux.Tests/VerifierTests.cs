using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests;

public class VerifierTests
{
    [Fact]
    public void RejectionKeepsTheLogAndShowsTheSourceLine()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var e = Assert.Throws<BpfVerifierException>(() => BpfCollection.Load(Programs.UncheckedLookup()));
        Assert.Equal("bad_read", e.ProgramName);
        Assert.Equal(Errno.EACCES, e.ErrorNumber);
        Assert.Equal(7, e.RawIndex);          // the lddw takes two slots
        Assert.Equal(6, e.InstructionIndex);
        Assert.NotNull(e.SourceLine);
        Assert.Equal(12, e.SourceLine!.Line);
        Assert.Contains("map_value_or_null", e.Log);
        Assert.Contains("bad.c:12: return *value;", e.Message);
        Assert.Contains("invalid mem access", e.Message);
        Assert.StartsWith("load program 'bad_read': the verifier refused it (EACCES)", e.Message);
    }

    [Fact]
    public void TinyLogBufferGrowsUntilTheWholeLogFits()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var options = new BpfCollectionOptions { VerifierLogSize = 64, VerifierLogLevel = 2 };
        using var collection = BpfCollection.Load(Programs.CountingXdp(), options);
        var log = collection.Program("count_pass").VerifierLog;
        Assert.NotNull(log);
        Assert.True(log!.Length > 64);
        Assert.Contains("processed", log);
    }
}
