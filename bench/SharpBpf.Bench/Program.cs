using BenchmarkDotNet.Running;

if (args.Length > 0 && args[0] == "jit")
    return SharpBpf.Bench.JitComparison.Run(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
