using System.Runtime.CompilerServices;

namespace SharpBpf.Vm.Jit;

/// <summary>
/// Runs programs through their compiled code. The driver mirrors <c>Interpreter.Execute</c>: the same frame set-up
/// for callbacks, the same unwinding after a trap; it also follows hand-offs between programs (tail calls, returns
/// into a caller of another program), looking up or compiling the next program's code.
/// </summary>
internal static unsafe class JitEngine
{
    private static int s_noticeGiven;

    /// <summary>Whether IL can be compiled here (false under NativeAOT): the quick and optimised tiers.</summary>
    public static bool IlAvailable => RuntimeFeature.IsDynamicCodeSupported && RuntimeFeature.IsDynamicCodeCompiled;

    /// <summary>Whether the JIT can compile anything here: IL, or baseline code (x86-64 Linux, also under
    /// NativeAOT). Where neither can, the jit engine runs the interpreter.</summary>
    public static bool IsAvailable => IlAvailable || Baseline.BaselineCompiler.IsAvailable;

    /// <summary>The tier a program's first code is compiled to.</summary>
    private static JitTier FirstTier(VmProgram program) => program.Tiering switch
    {
        JitTiering.Optimized => JitTier.Optimized,
        JitTiering.Quick => JitTier.Quick,
        _ => JitTier.Baseline,
    };

    /// <summary>
    /// Compiles at load when the JIT can run here (quick code when tiered, then the optimised code in the background);
    /// otherwise says once that the interpreter runs instead.
    /// </summary>
    public static JitCode? CompileAtLoad(VmProgram program)
    {
        if (!IsAvailable)
        {
            Notice();
            return null;
        }
        var code = JitCompiler.For(program, FirstTier(program));
        if (code is null)
            NoticeProgram(program);
        return code;
    }

    /// <summary>Starts compiling on a thread-pool thread; runs use the interpreter until the code is there.</summary>
    public static Task? CompileInBackground(VmProgram program)
    {
        if (!IsAvailable)
        {
            Notice();
            return null;
        }
        return Task.Run(() =>
        {
            if (JitCompiler.For(program, FirstTier(program)) is null)
                NoticeProgram(program);
        });
    }

    /// <summary>
    /// Tiered programs: compiles the optimised code on a thread-pool thread once the first code is there (after
    /// <paramref name="first"/>, the background compile, when there is one); runs switch to it at their next start.
    /// Null when the program is not tiered or the JIT cannot run here.
    /// </summary>
    public static Task? OptimizeInBackground(VmProgram program, Task? first)
    {
        if (program.Tiering != JitTiering.Tiered || !IlAvailable)
            return null;
        return first is null
            ? Task.Run(() => { JitCompiler.For(program, JitTier.Optimized); })
            : first.ContinueWith(_ => { JitCompiler.For(program, JitTier.Optimized); }, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private static void Notice()
    {
        if (Interlocked.Exchange(ref s_noticeGiven, 1) == 0)
            Console.Error.WriteLine("sharpbpf: dynamic code is not supported in this process (NativeAOT?); the jit engine runs the interpreter instead");
    }

    private static int s_programNoticeGiven;

    /// <summary>Where only the baseline tier can run (NativeAOT) and it does not handle a program: said once.</summary>
    private static void NoticeProgram(VmProgram program)
    {
        if (Interlocked.Exchange(ref s_programNoticeGiven, 1) == 0)
            Console.Error.WriteLine($"sharpbpf: dynamic code is not supported in this process (NativeAOT?) and program '{program.Name}' " +
                $"uses {Baseline.BaselineCompiler.Unsupported(program) ?? "what the baseline tier does not compile"}; the jit engine runs it on the interpreter");
    }

    private sealed class Invoker : IVmFunctionInvoker
    {
        public static readonly Invoker Instance = new();

        public ulong Invoke(VmExecution e, ulong function, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
        {
            var program = e.Program!;
            int target = program.FunctionIndexOf(function);
            if (target < 0)
                throw e.Trap(TrapKind.BadCall, $"0x{function:x} is not the address of a function of program '{program.Name}'");
            return Execute(e, program, target, r1, r2, r3, r4, r5, nested: true);
        }
    }

    /// <summary>Runs <paramref name="program"/> from its first instruction; BeginRun must have been called.</summary>
    public static ulong Run(VmExecution e, VmProgram program, ulong r1, ulong r2)
    {
        if (!IsAvailable)
        {
            Notice();
            return Interpreter.Run(e, program, r1, r2);
        }
        // Compiling in the background: the interpreter runs until the code is there; and for good when there is no
        // code to be had (NativeAOT, a program the baseline tier does not handle).
        if (program.JitCode is null && (program.JitCompilation is { IsCompleted: false } || program.NoJitCode))
            return Interpreter.Run(e, program, r1, r2);
        e.Invoker = Invoker.Instance;
        return Execute(e, program, 0, r1, r2, 0, 0, 0, nested: false);
    }

    private static ulong Execute(VmExecution e, VmProgram program, int startPc,
        ulong a1, ulong a2, ulong a3, ulong a4, ulong a5, bool nested)
    {
        ulong r10 = e.EnterRun(nested, out int baseDepth);
        try
        {
            return Drive(e, program, startPc, a1, a2, a3, a4, a5, r10, baseDepth);
        }
        finally
        {
            e.LeaveRun(nested, baseDepth);
        }
    }

    [SkipLocalsInit]
    private static ulong Drive(VmExecution e, VmProgram program, int pc,
        ulong a1, ulong a2, ulong a3, ulong a4, ulong a5, ulong r10, int baseDepth)
    {
        ulong* regs = stackalloc ulong[13];
        regs[0] = 0; regs[1] = a1; regs[2] = a2; regs[3] = a3; regs[4] = a4; regs[5] = a5;
        regs[6] = 0; regs[7] = 0; regs[8] = 0; regs[9] = 0; regs[10] = r10;
        return Drive(e, program, pc, regs, baseDepth);
    }

    /// <summary>
    /// A tail call baseline code made inside its own bpf-to-bpf call (native frames cannot be handed to the driver):
    /// runs the program the call switched to from its first instruction, with r0-r10 from <paramref name="regs"/>,
    /// as a run of its own at the current call depth, so that its exit comes back here with its r0, which the
    /// baseline code then returns from the function that made the tail call, as the other engines return into its
    /// caller.
    /// </summary>
    internal static ulong RunTailCallTarget(VmExecution e, ulong* regs) => Drive(e, e.Program!, 0, regs, e.CallDepth);

    private static ulong Drive(VmExecution e, VmProgram program, int pc, ulong* regs, int baseDepth)
    {
        while (true)
        {
            var code = program.JitCode ?? JitCompiler.For(program, FirstTier(program));
            if (code is null)
                return Interpreter.Continue(e, program, pc, regs, baseDepth); // no code to be had (see Run)
            regs[12] = 0;
            ulong r0 = code.Body(e, regs, pc, baseDepth);
            if (regs[12] == 0)
                return r0;
            // Hand-off: continue in the program the body switched to.
            program = e.Program!;
            pc = (int)regs[11];
        }
    }
}
