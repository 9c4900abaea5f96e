namespace SharpBpf.Vm.Jit;

/// <summary>The code a program was compiled to, in order of preference (a program only ever moves up).</summary>
internal enum JitTier
{
    /// <summary>RyuJIT without optimisation (MinOpts): cheap to compile.</summary>
    Quick,
    /// <summary>RyuJIT's full optimisation.</summary>
    Optimized,
}
