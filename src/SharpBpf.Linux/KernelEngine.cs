using SharpBpf.Objects;
using SharpBpf.Xdp;

namespace SharpBpf.Linux;

/// <summary>
/// The kernel as a test-run engine beside the interpreter and the JIT: loads an object's programs into the
/// kernel and runs one with BPF_PROG_TEST_RUN. Disposing it unloads everything it loaded.
/// </summary>
public sealed class KernelEngine : ITestRunnable, IDisposable
{
    private readonly BpfCollection _collection;
    private readonly BpfProgram _program;

    private KernelEngine(BpfCollection collection, BpfProgram program)
    {
        _collection = collection;
        _program = program;
    }

    /// <summary>
    /// Loads <paramref name="spec"/> (only <paramref name="programName"/> and the maps it uses, when given; else
    /// the first program; plus any programs <see cref="BpfCollectionOptions.Programs"/> names, e.g. the tail-call
    /// targets of a statically initialised program array). Throws <see cref="BpfNotSupportedException"/> with one
    /// sentence when BPF is unavailable.
    /// </summary>
    public static KernelEngine Load(CollectionSpec spec, string? programName = null, BpfCollectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Features.BpfFeatures.RequireBpf();
        programName ??= spec.Programs.FirstOrDefault()?.Name ?? throw new BpfException("the object has no programs");
        var others = options?.Programs ?? [];
        var collection = BpfCollection.Load(spec, (options ?? new BpfCollectionOptions()) with { Programs = [programName, .. others.Where(p => p != programName)] });
        return new KernelEngine(collection, collection.Program(programName));
    }

    public string Name => _program.Name;

    /// <summary>The loaded program (for its info, its fd, pinning).</summary>
    public BpfProgram Program => _program;

    /// <summary>The maps the program uses, by object name.</summary>
    public IReadOnlyDictionary<string, BpfMap> Maps => _collection.Maps;

    public TestRunResult TestRun(TestRunOptions options) => _program.TestRun(options);

    public void Dispose() => _collection.Dispose();
}
