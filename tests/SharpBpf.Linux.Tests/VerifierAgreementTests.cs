using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Tests.Support;
using SharpBpf.Tests.Verifier;
using SharpBpf.Verifier;

namespace SharpBpf.Linux.Tests;

/// <summary>
/// SharpBpf's verifier against the running kernel's: every program of the repository's objects and every privileged
/// rule case of the verifier's data-driven unit tests (tests/SharpBpf.Tests/Verifier/Cases) that is an XDP program is
/// loaded with BPF_PROG_LOAD (maps created, nothing pinned), and our verdict must equal the kernel's. A disagreement
/// is a bug of ours: a program the kernel accepts and we refuse is a false alarm, the other way round a missed
/// violation. Skipped, with the reason, without root.
/// </summary>
public class VerifierAgreementTests(ITestOutputHelper output)
{
    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var c in VerifierCase.LoadAll())
        {
            // Unprivileged cases need a loader without CAP_BPF; the kernel test runs as root.
            if (c.Privileged && c.ProgramType == ProgramType.Xdp)
                data.Add(c.Id);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void RuleCaseVerdictEqualsTheKernels(string id)
    {
        KernelTest.RequireBpf();
        var c = VerifierCase.LoadAll().Single(x => x.Id == id);
        var program = c.ToProgram();
        var ours = BpfVerifier.Verify(program, new VerifierOptions { Maps = c.Maps, Privileged = true, ComplexityLimit = c.ComplexityLimit });

        // The kernel sees the same instructions under a name it accepts, with the case's maps.
        var spec = new CollectionSpec { License = c.License, ObjectName = "case" };
        foreach (var map in c.Maps)
            spec.Maps.Add(map);
        // A map whose value holds a bpf_spin_lock (lock=N) needs BTF saying so, as the kernel checks it; a program
        // taking a function's address (a callback) needs BTF func_info for every function.
        var functions = FunctionStartsIfCallbacks(program.Instructions);
        if (c.Maps.Any(m => m.SpinLockOffset is not null) || functions.Count > 0)
            spec.Btf = CaseBtf(spec.Maps, functions, program.FuncInfos);
        program.Name = "verifier_case";
        // Kernel functions by name: the kernel takes their ids in its own BTF (BPF_PSEUDO_KFUNC_CALL, imm = FUNC id).
        if (c.NeedsKernelBtf)
            program.Instructions = program.Instructions.Select(KernelFunctionById).ToList();
        spec.Programs.Add(program);
        // (A case that exhausts a lowered complexity limit meets the kernel's own 1M limit there.)
        var kernel = c.DeviceBound ? DeviceBoundVerdict(spec, program.Name) : KernelVerdict(spec, program.Name);
        Report(id, ours, kernel);
        Assert.True(kernel.Accepted == ours.Accepted, Disagreement(id, ours, kernel));
    }

    /// <summary>A device-bound case is loaded for a veth device (lo has no XDP driver hooks: EOPNOTSUPP) in a
    /// network namespace of its own, which takes the veth pair with it when it is removed. Nothing is attached.</summary>
    private static Kernel DeviceBoundVerdict(CollectionSpec spec, string program)
    {
        using var ns = NetNs.Create();
        Ip.Run("-n", ns.Name, "link", "add", "vkf0", "type", "veth", "peer", "name", "vkf1");
        var line = Ip.Run("-n", ns.Name, "-o", "link", "show", "vkf0");
        int ifindex = int.Parse(line[..line.IndexOf(':', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
        return ns.Run(() => KernelVerdict(spec, program, ifindex));
    }

    private static readonly Lazy<SharpBpf.Btf.BtfSpec> s_vmlinux = new(() => SharpBpf.Btf.BtfSpec.Parse(File.ReadAllBytes("/sys/kernel/btf/vmlinux")));

    private static SharpBpf.Asm.Instruction KernelFunctionById(SharpBpf.Asm.Instruction insn)
    {
        if (insn.OpCode.Value != 0x85 || insn.Src != (SharpBpf.Asm.Register)SharpBpf.Asm.CallKind.Kfunc || insn.Reference is not { } name)
            return insn;
        var func = s_vmlinux.Value.FindByName(name, SharpBpf.Btf.BtfKind.Func);
        if (func is null)
            Assert.Skip($"this kernel has no kernel function {name}");
        return insn with { Reference = null, Constant = func!.Id };
    }

    public static TheoryData<string, string> ObjectPrograms()
    {
        var data = new TheoryData<string, string>();
        foreach (var path in Objects())
        {
            CollectionSpec spec;
            try
            {
                spec = ObjectFile.Read(File.ReadAllBytes(path), Path.GetFileName(path));
            }
            catch (BpfException)
            {
                continue; // not an object the reader accepts: ObjectLoadTests cover those
            }
            foreach (var p in spec.Programs)
            {
                if (PlatformTable.For(p.Type, p.ExpectedAttachType) is not null)
                    data.Add(Path.GetRelativePath(TestPaths.RepoRoot, path), p.Name);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ObjectPrograms))]
    public void ObjectProgramVerdictEqualsTheKernels(string file, string program)
    {
        KernelTest.RequireBpf();
        var spec = ObjectFile.Read(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, file)), Path.GetFileName(file));
        var ours = BpfVerifier.Verify(spec, program);
        var kernel = KernelVerdict(spec, program);
        Report($"{file}: {program}", ours, kernel);
        // A feature the verifier says it does not model (kfuncs, helpers without a prototype) is a known gap,
        // reported as such rather than as a wrong verdict; any other disagreement fails.
        if (kernel.Accepted && ours.Error is { } gap && IsDeclaredUnsupported(gap.Message))
            Assert.Skip($"known gap: the kernel accepts {file}: {program}; ours declines: {gap.Message}");
        Assert.True(kernel.Accepted == ours.Accepted, Disagreement($"{file}: {program}", ours, kernel));
    }

    /// <summary>Every committed object: the example programs, the bench programs, the test fixtures and the
    /// verifier's own object fixtures (global functions).</summary>
    private static IEnumerable<string> Objects()
    {
        foreach (var dir in new[] { "programs", Path.Combine("programs", "bench"), Path.Combine("tests", "testdata"),
            Path.Combine("tests", "SharpBpf.Tests", "Verifier", "Objects") })
        {
            var full = Path.Combine(TestPaths.RepoRoot, dir);
            if (Directory.Exists(full))
            {
                foreach (var path in Directory.GetFiles(full, "*.o").Order(StringComparer.Ordinal))
                    yield return path;
            }
        }
    }

    private static bool IsDeclaredUnsupported(string message) =>
        message.Contains("not supported by this verifier", StringComparison.Ordinal)
        || message.Contains("this verifier does not model", StringComparison.Ordinal);

    private sealed record Kernel(bool Accepted, int? InstructionIndex, string Message, int? Processed);

    /// <summary>Loads one program with its maps (unpinned) and closes everything again.</summary>
    private static Kernel KernelVerdict(CollectionSpec spec, string program, int? deviceIfIndex = null)
    {
        foreach (var map in spec.Maps)
            map.Pinning = MapPinning.None;
        using var leaks = new FdLeakCheck();
        try
        {
            using var loaded = BpfCollection.Load(spec, new BpfCollectionOptions { Programs = [program], VerifierLogLevel = 4, DeviceIfIndex = deviceIfIndex });
            return new Kernel(true, null, "", Processed(loaded.Program(program).VerifierLog));
        }
        catch (BpfVerifierException e)
        {
            var last = e.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .LastOrDefault(l => !l.StartsWith("processed ", StringComparison.Ordinal) && !l.StartsWith("verification time", StringComparison.Ordinal)
                    && !l.StartsWith("stack depth", StringComparison.Ordinal)) ?? e.Message;
            return new Kernel(false, e.InstructionIndex, last, Processed(e.Log));
        }
        catch (BpfException e) when (e is not BpfVerifierException)
        {
            // The load failed before the kernel's verifier ran (a map it cannot create): there is no verdict.
            Assert.Skip($"the kernel did not verify {program}: {e.Message}");
            throw;
        }
    }

    /// <summary>Raw slots where functions start (0 first) when the program takes a function's address (lddw
    /// src=BPF_PSEUDO_FUNC), else none.</summary>
    private static List<int> FunctionStartsIfCallbacks(IReadOnlyList<SharpBpf.Asm.Instruction> insns)
    {
        var starts = new SortedSet<int> { 0 };
        bool callbacks = false;
        int slot = 0;
        foreach (var insn in insns)
        {
            bool function = insn.IsLoadImmediate64 && (byte)insn.Src == (byte)SharpBpf.Asm.LoadImmediateSource.Function;
            callbacks |= function;
            if (function || (insn.OpCode.Value == 0x85 && (byte)insn.Src == (byte)SharpBpf.Asm.CallKind.Local))
                starts.Add(slot + insn.Immediate + 1);
            slot += insn.RawSize;
        }
        return callbacks ? [.. starts] : [];
    }

    /// <summary>
    /// Minimal BTF for rule cases: [1] int, [2] struct bpf_spin_lock { int val; }, then per map with a lock a key
    /// struct of the key's size and a value struct of the value's size with the lock at its offset (the maps' BTF
    /// key and value type ids are set); and per function start a FUNC (the first global, the others static) of an
    /// int(void) prototype, recorded in <paramref name="funcInfos"/>.
    /// </summary>
    private static SharpBpf.Btf.BtfSpec CaseBtf(IEnumerable<MapSpec> maps, List<int> functions, List<SharpBpf.Btf.BtfFuncInfo> funcInfos)
    {
        var strings = new List<byte> { 0 };
        uint Str(string text)
        {
            uint offset = (uint)strings.Count;
            strings.AddRange(System.Text.Encoding.ASCII.GetBytes(text));
            strings.Add(0);
            return offset;
        }
        var types = new List<uint>();
        uint next = 1;
        uint Struct(string name, uint size, params (string Name, uint Type, uint Offset)[] members)
        {
            types.AddRange([Str(name), (4u << 24) | (uint)members.Length, size]);
            foreach (var m in members)
                types.AddRange([Str(m.Name), m.Type, m.Offset * 8]);
            return next++;
        }
        types.AddRange([Str("int"), 1u << 24, 4, 32]); // [1] INT int, 4 bytes, 32 bits
        uint intId = next++;
        uint lockId = Struct("bpf_spin_lock", 4, ("val", intId, 0));
        foreach (var map in maps)
        {
            if (map.SpinLockOffset is not { } offset)
                continue;
            map.BtfKeyTypeId = Struct(map.Name + "_key", map.KeySize);
            map.BtfValueTypeId = Struct(map.Name + "_value", map.ValueSize, ("lock", lockId, (uint)offset));
        }
        if (functions.Count > 0)
        {
            types.AddRange([0, 13u << 24, intId]); // FUNC_PROTO int (void)
            uint proto = next++;
            funcInfos.Clear();
            for (int i = 0; i < functions.Count; i++)
            {
                // FUNC: info vlen = linkage (1 global for the program, 0 static for its functions).
                types.AddRange([Str(i == 0 ? "verifier_case" : $"f{functions[i]}"), (12u << 24) | (i == 0 ? 1u : 0u), proto]);
                funcInfos.Add(new SharpBpf.Btf.BtfFuncInfo(functions[i], next++));
            }
        }
        var typeBytes = types.SelectMany(BitConverter.GetBytes).ToArray();
        var header = new List<byte>();
        header.AddRange(BitConverter.GetBytes((ushort)0xeB9F));
        header.AddRange([1, 0]);
        foreach (uint v in new uint[] { 24, 0, (uint)typeBytes.Length, (uint)typeBytes.Length, (uint)strings.Count })
            header.AddRange(BitConverter.GetBytes(v));
        return SharpBpf.Btf.BtfSpec.Parse([.. header, .. typeBytes, .. strings]);
    }

    private static int? Processed(string? log)
    {
        var m = System.Text.RegularExpressions.Regex.Match(log ?? "", @"processed (\d+) insns");
        return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    private void Report(string what, VerifierResult ours, Kernel kernel)
    {
        output.WriteLine($"{what}: ours {(ours.Accepted ? "accepted" : $"refused at {ours.Error!.InstructionIndex}")} after {ours.ProcessedInstructions} insns; " +
            $"kernel {(kernel.Accepted ? "accepted" : $"refused at {kernel.InstructionIndex?.ToString() ?? "?"}")} after {kernel.Processed?.ToString() ?? "?"} insns");
        if (!kernel.Accepted)
            output.WriteLine($"  kernel: {kernel.Message}{(ours.Accepted ? "" : $"; ours: {ours.Error!.Message}")}");
        if (!ours.Accepted && !kernel.Accepted && kernel.InstructionIndex is { } k && k != ours.Error!.InstructionIndex)
            output.WriteLine($"  both refuse, at different instructions: ours {ours.Error.InstructionIndex} ({ours.Error.Message}), kernel {k} ({kernel.Message})");
    }

    private static string Disagreement(string what, VerifierResult ours, Kernel kernel) =>
        $"{what}: the kernel {(kernel.Accepted ? "accepts" : $"refuses ({kernel.Message}, instruction {kernel.InstructionIndex?.ToString() ?? "?"})")}, " +
        $"ours {(ours.Accepted ? "accepts" : $"refuses: {ours.Error}")}";
}
