using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Vm;

namespace SharpBpf.Cli.Commands;

/// <summary>Loads an object file into the managed VM and picks the program a command runs (test-run, run).</summary>
internal static class ProgramLoading
{
    /// <summary>The collection and program, or null after writing why to <paramref name="error"/>.</summary>
    public static (VmCollection Collection, VmProgram Program)? Load(string command, string path, string? programName, VmEngine engine, TextWriter error,
        Action<CollectionSpec>? prepare = null, bool verify = false, JitTiering tiering = JitTiering.Tiered)
    {
        if (Select(command, path, programName, error) is not { } chosen)
            return null;
        var (spec, program) = chosen;
        // Load only the chosen program (and every map): other programs of the object may use helpers or contexts
        // this runtime does not model.
        var single = new CollectionSpec { License = spec.License, KernelVersion = spec.KernelVersion };
        single.Maps.AddRange(spec.Maps);
        single.Programs.Add(program);
        single.Programs.AddRange(spec.Programs.Where(p => p != program && TailCallTargets(spec).Contains(p.Name)));
        try
        {
            prepare?.Invoke(single);
            var collection = VmCollection.Load(single, new VmOptions { Engine = engine, Verify = verify, JitTiering = tiering });
            return (collection, collection.Program(program.Name));
        }
        catch (SharpBpf.Verifier.VerifierException e)
        {
            error.WriteLine($"sharpbpf {command}: {Path.GetFileName(path)}: {e.Message}");
            error.WriteLine($"sharpbpf {command}: the project's verifier refused the program ('sharpbpf verify --kernel' shows the kernel's verdict beside it); --no-verify runs it anyway with every memory access checked");
            return null;
        }
        catch (BpfException e)
        {
            error.WriteLine($"sharpbpf {command}: {Path.GetFileName(path)}: {e.Message}");
            return null;
        }
    }

    /// <summary>The chosen program loaded into the kernel (--engine kernel), or null after writing why.</summary>
    public static SharpBpf.Linux.KernelEngine? LoadKernel(string command, string path, string? programName, TextWriter error,
        Action<CollectionSpec>? prepare = null)
    {
        if (Select(command, path, programName, error) is not { } chosen)
            return null;
        try
        {
            prepare?.Invoke(chosen.Spec);
            // The kernel loads the whole object's BTF and the maps the chosen program uses.
            return LoadKernelUnpinned(chosen.Spec, chosen.Program.Name);
        }
        catch (BpfException e)
        {
            error.WriteLine($"sharpbpf {command}: {Path.GetFileName(path)}: {e.Message}");
            return null;
        }
    }

    /// <summary>
    /// A test-run engine in the kernel with fresh maps: maps marked for pinning by name are not pinned nor reused,
    /// so a run never touches the state of a live program (--maps-from copies it on purpose).
    /// </summary>
    public static SharpBpf.Linux.KernelEngine LoadKernelUnpinned(CollectionSpec spec, string programName)
    {
        foreach (var map in spec.Maps)
            map.Pinning = MapPinning.None;
        return SharpBpf.Linux.KernelEngine.Load(spec, programName, new SharpBpf.Linux.BpfCollectionOptions { Programs = TailCallTargets(spec) });
    }

    /// <summary>
    /// The programs a statically initialised program array names (<c>.values = { [0] = &amp;prog }</c>): loaded with
    /// the chosen program, so its tail calls land where they would after a full load.
    /// </summary>
    private static HashSet<string> TailCallTargets(CollectionSpec spec) =>
        spec.Maps.Where(m => m.Type == SharpBpf.Platform.MapType.ProgArray)
            .SelectMany(m => m.InitialReferences).Select(r => r.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>Reads the object and picks the program (the named one, or the only XDP program).</summary>
    private static (CollectionSpec Spec, ProgramSpec Program)? Select(string command, string path, string? programName, TextWriter error)
    {
        if (Open(command, path, error) is not { } spec)
            return null;
        ProgramSpec? program;
        if (programName is not null)
        {
            program = spec.FindProgram(programName);
            if (program is null)
            {
                error.WriteLine($"sharpbpf {command}: {Path.GetFileName(path)}: no program '{programName}' (it has: {string.Join(", ", spec.Programs.Select(p => p.Name))})");
                return null;
            }
        }
        else
        {
            var xdp = spec.Programs.Where(p => p.Type == ProgramType.Xdp).ToList();
            if (xdp.Count != 1)
            {
                error.WriteLine(xdp.Count == 0
                    ? $"sharpbpf {command}: {Path.GetFileName(path)}: no XDP program in the object"
                    : $"sharpbpf {command}: {Path.GetFileName(path)}: several XDP programs ({string.Join(", ", xdp.Select(p => p.Name))}); choose one with --program");
                return null;
            }
            program = xdp[0];
        }
        if (program.Type != ProgramType.Xdp)
        {
            error.WriteLine($"sharpbpf {command}: program '{program.Name}' is a {program.Type} program; only XDP programs can be run here");
            return null;
        }
        return (spec, program);
    }

    /// <summary>Reads an object file, or returns null after writing why (with the file name) to <paramref name="error"/>.</summary>
    public static CollectionSpec? Open(string command, string path, TextWriter error)
    {
        try
        {
            return ObjectFile.Open(path);
        }
        catch (Exception e) when (e is BpfException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"sharpbpf {command}: {Path.GetFileName(path)}: {e.Message}");
            return null;
        }
    }

    /// <summary>Every program of the object, or only the named one; null after writing why (commands that show all).</summary>
    public static List<ProgramSpec>? SelectAll(string command, string path, CollectionSpec spec, string? programName, TextWriter error)
    {
        var programs = programName is null ? spec.Programs : spec.Programs.FindAll(p => p.Name == programName);
        if (programs.Count > 0)
            return programs;
        error.WriteLine(programName is null
            ? $"sharpbpf {command}: {Path.GetFileName(path)}: the object has no programs"
            : $"sharpbpf {command}: {Path.GetFileName(path)}: no program '{programName}' (it has: {string.Join(", ", spec.Programs.Select(p => p.Name))})");
        return null;
    }
}
