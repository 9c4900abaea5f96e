using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Verifier;

/// <summary>
/// Proves a program safe as the Linux kernel's verifier does, without a kernel: every path is explored with an
/// abstract state (register types, scalar bounds and known bits, stack contents), states are pruned when an
/// already-verified state covers them, and a refusal says the instruction, its C line, the register that failed, why
/// and how to fix it. See docs/verifier.md for the approach and its trade-offs.
/// <example><code>
/// var result = BpfVerifier.Verify(spec, "xdp_filter");
/// if (!result.Accepted) Console.WriteLine(result.Error);
/// </code></example>
/// </summary>
public static class BpfVerifier
{
    /// <summary>Verifies the program named <paramref name="programName"/> of a collection, with the collection's maps.</summary>
    public static VerifierResult Verify(CollectionSpec collection, string programName, VerifierOptions? options = null)
    {
        var program = collection.FindProgram(programName)
            ?? throw new ArgumentException($"the collection has no program named '{programName}'", nameof(programName));
        options ??= new VerifierOptions();
        var maps = options.Maps.Count > 0 ? options.Maps : collection.Maps;
        return Verify(program, options with { Maps = maps, Btf = options.Btf ?? collection.Btf, Externs = options.Externs.Count > 0 ? options.Externs : collection.Externs });
    }

    /// <summary>Verifies one program; maps it refers to come from <see cref="VerifierOptions.Maps"/>.</summary>
    public static VerifierResult Verify(ProgramSpec program, VerifierOptions? options = null)
    {
        options ??= new VerifierOptions();
        var platform = PlatformTable.For(program.Type, options.ExpectedAttachType ?? program.ExpectedAttachType)
            ?? throw new BpfNotSupportedException($"verifying {program.Type} programs", detail: "the verifier models XDP, socket filter and tc programs");
        return new Engine(program, platform, options).Run();
    }
}
