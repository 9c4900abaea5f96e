namespace SharpBpf.Vm.Jit;

/// <summary>The code a program was compiled to, in order of preference (a program only ever moves up).</summary>
internal enum JitTier
{
    /// <summary>Native x86-64 code written by <see cref="Baseline.BaselineCompiler"/> in one pass: the cheapest to
    /// compile. Programs it does not handle (or platforms it does not run on) get <see cref="Quick"/> code instead.</summary>
    Baseline,
    /// <summary>RyuJIT without optimisation (MinOpts): cheap to compile.</summary>
    Quick,
    /// <summary>RyuJIT's full optimisation.</summary>
    Optimized,
}
