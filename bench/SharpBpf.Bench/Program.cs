using BenchmarkDotNet.Running;

// Wall-clock reports that need a live kernel setup rather than BenchmarkDotNet's harness, by name:
//   filter-veth  packets dropped by the filter on veth beside a plain XDP_DROP program
//   afxdp        AF_XDP receive+drop against a C reference, and run-user against native attach
//   interp       the interpreter's ns/insn and ns/call against the JIT and the kernel's JIT on the same programs
//   jit          the JIT against the kernel's JIT (BPF_PROG_TEST_RUN) and the interpreter on programs/bench
//   verifier     our verifier beside the kernel's: processed instructions and verification time per program
//   load         open+load of a 4-map object, SharpBpf and libbpf alternating
if (args is ["filter-veth", .. var filterArgs])
    return SharpBpf.Bench.FilterVethBench.Run(filterArgs);
if (args is ["afxdp", .. var afxdpArgs])
    return SharpBpf.Bench.AfXdpBench.Run(afxdpArgs);
if (args is ["verifier", .. var verifierArgs])
    return SharpBpf.Bench.VerifierComparison.Run(verifierArgs);
if (args is ["interp", .. var interpArgs])
    return SharpBpf.Bench.InterpreterComparison.Run(interpArgs);
if (args is ["load", .. var loadArgs])
    return SharpBpf.Bench.LoadBench.Run(loadArgs);
if (args is ["jit", .. var jitArgs])
    return SharpBpf.Bench.JitComparison.Run(jitArgs);

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
