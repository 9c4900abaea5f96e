using BenchmarkDotNet.Running;

// Wall-clock reports that need a live kernel setup rather than BenchmarkDotNet's harness, by name.
if (args is ["filter-veth", .. var rest])
    return SharpBpf.Bench.FilterVethBench.Run(rest);
if (args is ["jit", .. var jitArgs])
    return SharpBpf.Bench.JitComparison.Run(jitArgs);

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
