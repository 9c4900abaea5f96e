using BenchmarkDotNet.Running;

// The AF_XDP benchmark measures live traffic against a C reference, outside BenchmarkDotNet.
if (args is ["afxdp", .. var rest])
    return SharpBpf.Bench.AfXdpBench.Run(rest);
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
