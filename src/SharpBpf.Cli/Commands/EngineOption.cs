using System.CommandLine;
using SharpBpf.Vm;

namespace SharpBpf.Cli.Commands;

/// <summary>The <c>--engine interpreter|jit|kernel</c> option shared by test-run, run and conformance, and the one
/// place that says which engines this build has.</summary>
internal static class EngineOption
{
    public static Option<VmEngine> Create()
    {
        var option = new Option<VmEngine>("--engine")
        {
            Description = "Engine: interpreter (default), jit or kernel",
            DefaultValueFactory = _ => VmEngine.Interpreter,
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "interpreter";
                if (VmEngineNames.TryParse(text, out var engine))
                    return engine;
                result.AddError($"unknown engine '{text}': use interpreter, jit or kernel");
                return VmEngine.Interpreter;
            },
        };
        return option;
    }

    /// <summary>
    /// <c>--jit-tier tiered|baseline|quick|optimized</c> (default tiered): the code the jit engine compiles a program
    /// to (<see cref="VmOptions.JitTiering"/>). Accepted and ignored with the other engines.
    /// </summary>
    public static Option<JitTiering> CreateJitTier()
    {
        var option = new Option<JitTiering>("--jit-tier")
        {
            Description = "With --engine jit: the code it compiles to: tiered (default: baseline code at load, optimised " +
                "code swapped in later), baseline (SharpBpf's own x86-64 code; quick where it does not apply), quick " +
                "(RyuJIT MinOpts) or optimized (RyuJIT full optimisation). Ignored by the other engines",
            DefaultValueFactory = _ => JitTiering.Tiered,
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "tiered";
                if (TryParseTiering(text, out var tiering))
                    return tiering;
                result.AddError($"unknown jit tier '{text}': use tiered, baseline, quick or optimized");
                return JitTiering.Tiered;
            },
        };
        return option;
    }

    /// <summary>tiered, baseline, quick or optimized (case-insensitive).</summary>
    public static bool TryParseTiering(string? text, out JitTiering tiering)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "tiered": tiering = JitTiering.Tiered; return true;
            case "baseline": tiering = JitTiering.Baseline; return true;
            case "quick": tiering = JitTiering.Quick; return true;
            case "optimized": tiering = JitTiering.Optimized; return true;
            default: tiering = default; return false;
        }
    }

    /// <summary>The option's spelling of <paramref name="tiering"/>.</summary>
    public static string TieringName(JitTiering tiering) => tiering switch
    {
        JitTiering.Tiered => "tiered",
        JitTiering.Baseline => "baseline",
        JitTiering.Quick => "quick",
        JitTiering.Optimized => "optimized",
        _ => tiering.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// How a command names the engine a program ran on: <c>interpreter</c>, <c>kernel</c>, or on the jit the code it
    /// runs now: <c>jit, baseline</c> (<c>jit, tiered: optimized</c> when tiered: the tier it has reached).
    /// </summary>
    public static string Describe(VmProgram program)
    {
        if (program.Engine != VmEngine.Jit)
            return program.Engine.ToName();
        var tier = program.JitTierName ?? "not compiled";
        return program.Tiering == JitTiering.Tiered ? $"jit, tiered: {tier}" : $"jit, {tier}";
    }

    /// <summary>
    /// <c>--no-verify</c>: without it the managed engines run a program only once the project's verifier proved it
    /// safe (as the kernel would), and then without per-access checks; with it, unverified, every access checked.
    /// </summary>
    public static Option<bool> CreateNoVerify() => new("--no-verify")
    {
        Description = "Managed engines: run without the verifier's proof, checking every memory access at run time " +
            "(by default a program runs only once verified, as in the kernel)",
    };

    /// <summary>False (after saying why on <paramref name="error"/>) when the engine is not available here.</summary>
    public static bool EnsureAvailable(VmEngine engine, TextWriter error, bool vmOnly = false)
    {
        switch (engine)
        {
            case VmEngine.Interpreter:
            case VmEngine.Jit:
                return true;
            case VmEngine.Kernel when !vmOnly:
                // The kernel engine needs BPF here: say in one sentence why not (not root, no bpf(2)).
                if (SharpBpf.Linux.Features.BpfFeatures.Unavailable is { } why)
                {
                    error.WriteLine($"engine 'kernel': {why}");
                    return false;
                }
                return true;
            default:
                error.WriteLine(vmOnly
                    ? "engine 'kernel' is not available for this command yet; use --engine interpreter"
                    : "engine 'kernel' is not built yet (it needs the Linux backend); use --engine interpreter");
                return false;
        }
    }
}
