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
