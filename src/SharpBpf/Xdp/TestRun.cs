namespace SharpBpf.Xdp;

/// <summary>
/// The one test-run contract every engine honours (interpreter, JIT, the kernel's BPF_PROG_TEST_RUN):
/// input packet (and optional context) and a repeat count in; return value, output packet and time per run out.
/// As in the kernel, repeated runs work on the same buffer, so writes accumulate.
/// </summary>
public sealed record TestRunOptions
{
    /// <summary>The packet (data_in).</summary>
    public ReadOnlyMemory<byte> Data { get; init; }

    /// <summary>Optional context in (for XDP a struct xdp_md: ingress_ifindex, rx_queue_index...).</summary>
    public ReadOnlyMemory<byte>? Context { get; init; }

    /// <summary>How many times to run the program (at least 1).</summary>
    public int Repeat { get; init; } = 1;
}

/// <summary>What a test run gives back, identical in shape for every engine.</summary>
public sealed record TestRunResult
{
    /// <summary>The program's r0 (the kernel reports the low 32 bits).</summary>
    public required ulong ReturnValue { get; init; }

    /// <summary>The packet as it left the program (data_out).</summary>
    public required byte[] DataOut { get; init; }

    /// <summary>The context as it left the program, when one was passed in.</summary>
    public byte[]? ContextOut { get; init; }

    /// <summary>Average time of one run, in nanoseconds, as the engine measured it.</summary>
    public required double NanosecondsPerRun { get; init; }

    /// <summary>"interpreter", "jit" or "kernel".</summary>
    public required string Engine { get; init; }

    /// <summary>The program's name.</summary>
    public required string Program { get; init; }

    /// <summary>
    /// Why the last run ended in XDP_ABORTED when it trapped (bad access, runaway loop, bad call), with the
    /// instruction and source line; null otherwise. The managed engines know it; the kernel does not say.
    /// </summary>
    public string? Trap { get; init; }

    /// <summary>The bpf_trace_printk lines of every run, in order (managed engines; the kernel's go to its trace pipe).</summary>
    public IReadOnlyList<string> Trace { get; init; } = [];

    /// <summary>The return value read as an XDP action.</summary>
    public XdpAction Action => (XdpAction)(uint)ReturnValue;
}

/// <summary>A loaded program that can be test-run: implemented by the VM engines and by the Linux backend.</summary>
public interface ITestRunnable
{
    /// <summary>The program's name.</summary>
    string Name { get; }

    /// <summary>Runs the program under the test-run contract.</summary>
    TestRunResult TestRun(TestRunOptions options);
}
