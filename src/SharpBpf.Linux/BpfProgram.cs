using System.Buffers.Binary;
using System.Text;
using SharpBpf.Asm;
using SharpBpf.Linux.Interop;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Xdp;

namespace SharpBpf.Linux;

/// <summary>A program loaded into the kernel (verified, usually JIT-compiled), owned through its fd.</summary>
public sealed unsafe class BpfProgram : IDisposable, ITestRunnable
{
    private readonly Bpf _bpf;

    private BpfProgram(Bpf bpf, BpfFd fd, string name, ProgramType type, uint id, string? verifierLog)
    {
        _bpf = bpf;
        Fd = fd;
        Name = name;
        Type = type;
        Id = id;
        VerifierLog = verifierLog;
    }

    public BpfFd Fd { get; }
    public string Name { get; }
    public ProgramType Type { get; }

    /// <summary>The kernel's id for this program (machine-wide; never assume it small or stable).</summary>
    public uint Id { get; }

    /// <summary>The verifier's log of a successful load, when a log level was asked for.</summary>
    public string? VerifierLog { get; }

    /// <summary>Where the program was pinned by this process or found pinned, if anywhere.</summary>
    public string? PinPath { get; private set; }

    // ---- loading ----

    /// <summary>
    /// Loads one program. Map references (lddw with a map name) are resolved from <paramref name="maps"/>.
    /// A verifier refusal is a <see cref="BpfVerifierException"/> with the whole log.
    /// </summary>
    public static BpfProgram Load(ProgramSpec spec, IReadOnlyDictionary<string, BpfMap>? maps = null, BpfCollectionOptions? options = null) =>
        Load(Bpf.Default, spec, maps ?? new Dictionary<string, BpfMap>(), options ?? new BpfCollectionOptions(), license: null, kernelVersion: 0, btf: null, linker: null);

    internal static BpfProgram Load(Bpf bpf, ProgramSpec spec, IReadOnlyDictionary<string, BpfMap> maps, BpfCollectionOptions options,
        string? license, uint kernelVersion, BpfFd? btf, KernelLinker? linker)
    {
        if (spec.Type == ProgramType.Unspec)
            throw new BpfException($"program '{spec.Name}': its section '{spec.SectionName}' names no program type (name it as libbpf does: SEC(\"xdp\"), SEC(\"tc\"), ...)");
        // Without its object (a ProgramSpec alone) there is no BTF to resolve CO-RE relocations and externs against.
        linker ??= new KernelLinker(new CollectionSpec());
        var code = InstructionCodec.Encode(ResolveReferences(spec, linker.Relocate(spec), maps, linker));
        var licenseBytes = Bpf.NulTerminated(string.IsNullOrEmpty(spec.License) ? license ?? "" : spec.License);
        var attr = new ProgLoadAttr
        {
            ProgType = (uint)spec.Type,
            InsnCnt = (uint)(code.Length / RawInstruction.Size),
            KernVersion = kernelVersion,
            ProgFlags = spec.Flags,
            ProgName = ObjectName.From(spec.Name),
            ExpectedAttachType = spec.ExpectedAttachType ?? 0,
            AttachBtfId = linker.AttachBtfId(spec) ?? 0,
            ProgIfIndex = (uint)(options.DeviceIfIndex ?? 0),
        };

        // BTF func and line info, when the object's BTF was loaded (records use raw instruction offsets).
        byte[]? funcInfo = null, lineInfo = null;
        if (btf is not null && spec.FuncInfos.Count > 0)
        {
            funcInfo = new byte[spec.FuncInfos.Count * 8];
            for (int i = 0; i < spec.FuncInfos.Count; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(funcInfo.AsSpan(i * 8), spec.FuncInfos[i].InstructionOffset);
                BinaryPrimitives.WriteUInt32LittleEndian(funcInfo.AsSpan(i * 8 + 4), spec.FuncInfos[i].TypeId);
            }
            if (spec.LineInfos.Count > 0)
            {
                lineInfo = new byte[spec.LineInfos.Count * 16];
                for (int i = 0; i < spec.LineInfos.Count; i++)
                {
                    var l = spec.LineInfos[i];
                    var span = lineInfo.AsSpan(i * 16);
                    BinaryPrimitives.WriteInt32LittleEndian(span, l.InstructionOffset);
                    BinaryPrimitives.WriteUInt32LittleEndian(span[4..], l.FileNameOffset);
                    BinaryPrimitives.WriteUInt32LittleEndian(span[8..], l.LineOffset);
                    BinaryPrimitives.WriteUInt32LittleEndian(span[12..], ((uint)l.Line << 10) | ((uint)l.Column & 0x3ff));
                }
            }
        }
        // The BTF fd stays open for the whole collection load, so its number is stable here.
        if (btf is not null && funcInfo is not null)
        {
            attr.ProgBtfFd = (uint)btf.Value;
            attr.FuncInfoRecSize = 8;
            attr.FuncInfoCnt = (uint)spec.FuncInfos.Count;
            if (lineInfo is not null)
            {
                attr.LineInfoRecSize = 16;
                attr.LineInfoCnt = (uint)spec.LineInfos.Count;
            }
        }

        // Like libbpf: load without a log first (a log slows verification down), and only on failure load again
        // with one, growing the buffer while the kernel says it was too small (ENOSPC).
        uint logLevel = (uint)Math.Max(0, options.VerifierLogLevel);
        int logSize = logLevel > 0 ? options.VerifierLogSize : 0;
        while (true)
        {
            byte[]? log = logSize > 0 ? new byte[logSize] : null;
            int result;
            fixed (byte* insns = code)
            fixed (byte* lic = licenseBytes)
            fixed (byte* logBuf = log)
            fixed (byte* fi = funcInfo)
            fixed (byte* li = lineInfo)
            {
                attr.FuncInfo = attr.FuncInfoCnt > 0 ? (ulong)fi : 0;
                attr.LineInfo = attr.LineInfoCnt > 0 ? (ulong)li : 0;
                attr.Insns = (ulong)insns;
                attr.License = (ulong)lic;
                attr.LogBuf = (ulong)logBuf;
                attr.LogSize = (uint)(log?.Length ?? 0);
                attr.LogLevel = log is null ? 0 : Math.Max(1u, logLevel);
                result = bpf.TryProgLoad(ref attr);
            }
            if (result >= 0)
            {
                var fd = bpf.Adopt(result);
                try
                {
                    var info = bpf.GetInfo<BpfProgInfo>(fd);
                    return new BpfProgram(bpf, fd, spec.Name, spec.Type, info.Id, log is null ? null : LogText(log));
                }
                catch
                {
                    fd.Dispose();
                    throw;
                }
            }
            int errno = -result;
            if (log is null)
            {
                logSize = Math.Max(options.VerifierLogSize, 64);
                continue;
            }
            if (errno == Errno.ENOSPC && log.Length < MaxLogSize)
            {
                logSize = (int)Math.Min((long)log.Length * 4, MaxLogSize);
                continue;
            }
            var text = LogText(log);
            if (text.Length == 0 && errno != Errno.EACCES && errno != Errno.EINVAL)
                throw Bpf.Error(BpfCommand.BPF_PROG_LOAD, errno).WithContext($"load program '{spec.Name}'");
            int? raw = BpfVerifierException.LastInstruction(text);
            int? logical = raw is { } r ? LogicalIndex(spec.Instructions, r) : null;
            var source = logical is { } l ? FindLine(spec.Lines, l) : null;
            throw new BpfVerifierException(spec.Name, errno, text, raw, logical, source, raw is { } at ? linker.Explain(spec.Name, at, text) : null);
        }
    }

    // The kernel accepts log buffers up to UINT_MAX >> 2 on current kernels, 16 MiB on older ones.
    private const int MaxLogSize = 256 * 1024 * 1024;

    private static string LogText(byte[] log)
    {
        int end = Array.IndexOf(log, (byte)0);
        return Encoding.UTF8.GetString(log, 0, end < 0 ? log.Length : end).TrimEnd();
    }

    /// <summary>
    /// Copies the instructions with map fds in place of map names (lddw MapFd / MapValue references), and kernel
    /// BTF ids or addresses in place of __ksym externs.
    /// </summary>
    internal static List<Instruction> ResolveReferences(ProgramSpec spec, IReadOnlyList<Instruction> instructions, IReadOnlyDictionary<string, BpfMap> maps, KernelLinker linker)
    {
        var result = new List<Instruction>(instructions.Count);
        int rawIndex = 0;
        foreach (var insn in instructions)
        {
            var resolved = insn;
            if (insn.IsLoadImmediate64 && (LoadImmediateSource)insn.Src is LoadImmediateSource.MapFd or LoadImmediateSource.MapValue
                && insn.Reference is { } name)
            {
                if (!maps.TryGetValue(name, out var map))
                    throw new BpfException($"load program '{spec.Name}': instruction {rawIndex} refers to map '{name}', which is not defined");
                // Low 32 bits: the fd; high 32 bits: the value offset (MapValue) or 0 (MapFd).
                long constant = (long)(((ulong)insn.Constant & 0xFFFF_FFFF_0000_0000UL) | (uint)map.Fd.Value);
                resolved = insn with { Constant = constant };
            }
            else if (insn.Reference is not null
                && ((insn.IsLoadImmediate64 && (LoadImmediateSource)insn.Src == LoadImmediateSource.BtfId)
                    || (insn.OpCode.Value == 0x85 && (byte)insn.Src == (byte)CallKind.Kfunc)))
            {
                // __ksym variables and kfunc calls: BTF ids in the kernel's BTF, or kallsyms addresses.
                resolved = linker.ResolveExtern(spec, rawIndex, insn);
            }
            result.Add(resolved);
            rawIndex += insn.RawSize;
        }
        return result;
    }

    internal static int? LogicalIndex(IReadOnlyList<Instruction> instructions, int rawIndex)
    {
        int raw = 0;
        for (int i = 0; i < instructions.Count; i++)
        {
            if (raw == rawIndex || (raw < rawIndex && raw + instructions[i].RawSize > rawIndex))
                return i;
            raw += instructions[i].RawSize;
        }
        return null;
    }

    /// <summary>The source line covering an instruction: the last line starting at or before it.</summary>
    internal static SourceLine? FindLine(IReadOnlyList<SourceLine> lines, int instructionIndex)
    {
        SourceLine? found = null;
        foreach (var line in lines)
        {
            if (line.InstructionIndex > instructionIndex)
                break;
            found = line;
        }
        return found;
    }

    // ---- opening ----

    internal static BpfProgram FromFd(Bpf bpf, BpfFd fd, string? name)
    {
        try
        {
            var info = bpf.GetInfo<BpfProgInfo>(fd);
            return new BpfProgram(bpf, fd, name ?? info.Name.ToString(), (ProgramType)info.Type, info.Id, null);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Opens a program pinned on a bpffs.</summary>
    public static BpfProgram OpenPinned(string path)
    {
        BpfFd fd;
        try { fd = Bpf.Default.ObjGet(path); }
        catch (BpfSyscallException e) { throw e.WithContext($"open pinned program '{path}'"); }
        var target = new FileInfo($"/proc/self/fd/{fd.Value}").LinkTarget;
        if (target is not null && !target.Contains("bpf-prog", StringComparison.Ordinal))
        {
            fd.Dispose();
            throw new BpfException($"open pinned program '{path}': the object pinned there is not a program");
        }
        var program = FromFd(Bpf.Default, fd, null);
        program.PinPath = path;
        return program;
    }

    /// <summary>Opens a program by its kernel id.</summary>
    public static BpfProgram FromId(uint id)
    {
        try { return FromFd(Bpf.Default, Bpf.Default.GetFdById(BpfCommand.BPF_PROG_GET_FD_BY_ID, id), null); }
        catch (BpfSyscallException e) { throw e.WithContext($"open program id {id}"); }
    }

    /// <summary>Every program id in the kernel now (machine-wide).</summary>
    public static List<uint> AllIds()
    {
        var ids = new List<uint>();
        for (uint id = 0; Bpf.Default.TryGetNextId(BpfCommand.BPF_PROG_GET_NEXT_ID, id, out id);)
            ids.Add(id);
        return ids;
    }

    public ProgramInfo GetInfo()
    {
        var info = _bpf.GetInfo<BpfProgInfo>(Fd);
        var mapIds = new uint[info.NrMapIds];
        if (mapIds.Length > 0)
        {
            // Ask again with room for the map ids (the kernel fills at most nr_map_ids of them).
            fixed (uint* ids = mapIds)
            {
                var withIds = new BpfProgInfo { NrMapIds = (uint)mapIds.Length, MapIds = (ulong)ids };
                _bpf.GetInfo(Fd, ref withIds);
                info = withIds;
                if (withIds.NrMapIds < mapIds.Length)
                    mapIds = mapIds[..(int)withIds.NrMapIds];
            }
        }
        return ProgramInfo.From(info, mapIds);
    }

    /// <summary>Pins the program at <paramref name="path"/> on a bpffs, so it outlives this process.</summary>
    public void Pin(string path)
    {
        try { _bpf.ObjPin(Fd, path); }
        catch (BpfSyscallException e) { throw e.WithContext($"pin program '{Name}' at '{path}'"); }
        PinPath = path;
    }

    // ---- test-run ----

    /// <summary>
    /// Runs the program in the kernel on a packet (BPF_PROG_TEST_RUN). The kernel reuses one buffer for all
    /// repeats, so writes accumulate, and it reports the average duration.
    /// </summary>
    public TestRunResult TestRun(TestRunOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Repeat < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "repeat must be at least 1");
        if (Type == ProgramType.Xdp && options.Data.Length < 14)
            throw new BpfException($"test-run program '{Name}': the kernel takes XDP frames of at least 14 bytes (an Ethernet header); this one has {options.Data.Length}");
        var data = options.Data.ToArray();
        // Room for programs that grow the packet (bpf_xdp_adjust_tail); the kernel reports ENOSPC if it is short.
        var dataOut = new byte[data.Length + 4096];
        var ctxIn = options.Context?.ToArray();
        var ctxOut = ctxIn is null ? null : new byte[ctxIn.Length];
        fixed (byte* din = data)
        fixed (byte* dout = dataOut)
        fixed (byte* cin = ctxIn)
        fixed (byte* cout = ctxOut)
        {
            var attr = new ProgTestRunAttr
            {
                DataIn = (ulong)din,
                DataSizeIn = (uint)data.Length,
                DataOut = (ulong)dout,
                DataSizeOut = (uint)dataOut.Length,
                Repeat = (uint)options.Repeat,
                CtxIn = (ulong)cin,
                CtxSizeIn = (uint)(ctxIn?.Length ?? 0),
                CtxOut = (ulong)cout,
                CtxSizeOut = (uint)(ctxOut?.Length ?? 0),
            };
            int r = _bpf.TryProgTestRun(Fd, ref attr);
            if (r < 0)
                throw Bpf.Error(BpfCommand.BPF_PROG_TEST_RUN, -r).WithContext($"test-run program '{Name}'");
            return new TestRunResult
            {
                ReturnValue = attr.Retval,
                DataOut = dataOut[..(int)Math.Min(attr.DataSizeOut, (uint)dataOut.Length)],
                ContextOut = ctxOut?[..(int)Math.Min(attr.CtxSizeOut, (uint)ctxOut.Length)],
                NanosecondsPerRun = attr.Duration,
                Engine = "kernel",
                Program = Name,
            };
        }
    }

    public void Dispose() => Fd.Dispose();

    public override string ToString() => $"program '{Name}' ({Type}, id {Id})";
}
