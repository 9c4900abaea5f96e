using SharpBpf.Objects;
using SharpBpf.Tests.Support;
using SharpBpf.Verifier;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// Global functions (Verifier/Objects/global_func.c) are verified on their own with BTF-typed arguments, as the
/// kernel does (the kernel's verdicts on the same object are checked by the Linux tests' agreement test).
/// </summary>
public class GlobalFunctionTests
{
    private static CollectionSpec Object() =>
        ObjectFile.Open(Path.Combine(TestPaths.RepoRoot, "tests", "SharpBpf.Tests", "Verifier", "Objects", "global_func.o"));

    [Fact]
    public void AGlobalFunctionTakingTheContextChecksThePacketItself()
    {
        var result = BpfVerifier.Verify(Object(), "global_ctx");
        Assert.True(result.Accepted, result.Error?.ToString());
    }

    [Fact]
    public void PacketPointersPassedInAStructAreNumbersInsideAGlobalFunction()
    {
        var result = BpfVerifier.Verify(Object(), "global_copy");
        Assert.False(result.Accepted);
        Assert.Equal(15, result.Error!.InstructionIndex);
        Assert.Contains("invalid mem access 'scalar'", result.Error.Message);
        Assert.Equal(28, result.Error.SourceLine?.Line);
    }

    [Fact]
    public void WithoutBtfTheSameFunctionIsWalkedWithTheCallersState()
    {
        // A program handed over without its collection has no BTF: the function is treated as static (inlined),
        // and the packet pointers in the struct keep their type.
        var spec = Object();
        var result = BpfVerifier.Verify(spec.FindProgram("global_copy")!, new VerifierOptions { Maps = spec.Maps });
        Assert.True(result.Accepted, result.Error?.ToString());
    }

    [Fact]
    public void AGlobalFunctionNoVerifiedPathCallsIsNotVerified()
    {
        // The call sits behind a branch on a frozen .rodata constant (0): the branch is decided, the function never
        // called, and its unchecked packet read never verified, as in the kernel.
        var result = BpfVerifier.Verify(Object(), "global_unreached");
        Assert.True(result.Accepted, result.Error?.ToString());
    }

    [Fact]
    public void AGlobalFunctionAVerifiedPathCallsIsVerified()
    {
        var result = BpfVerifier.Verify(Object(), "global_reached");
        Assert.False(result.Accepted);
        Assert.Contains("invalid access to packet", result.Error!.Message);
        Assert.Contains("return data[0];", result.Error.SourceLine?.Text); // inside unsafe_first_byte
    }
}
