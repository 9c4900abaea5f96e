using BenchmarkDotNet.Running;

// Wall-clock reports that need a live kernel setup rather than BenchmarkDotNet's harness, by name:
//   filter-veth  packets dropped by the filter on veth beside a plain XDP_DROP program
//   afxdp        AF_XDP receive+drop against a C reference, and run-user against native attach
if (args is ["filter-veth", .. var filterArgs])
    return SharpBpf.Bench.FilterVethBench.Run(filterArgs);
if (args is ["afxdp", .. var afxdpArgs])
    return SharpBpf.Bench.AfXdpBench.Run(afxdpArgs);

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
