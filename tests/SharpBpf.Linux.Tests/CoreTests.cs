using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using SharpBpf.Btf;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests;

/// <summary>
/// Objects fitted to the running kernel at load: CO-RE relocations against /sys/kernel/btf/vmlinux, __ksym
/// variables and kfuncs, __kconfig externs, BTF attach targets. Answers are checked against what the kernel and
/// its files say, and the loaded code against libbpf's (bpftool) for the same object.
/// </summary>
public partial class CoreTests
{
    private static void RequireBtfAndBpftool(bool bpftool = false)
    {
        KernelTest.RequireBpf();
        if (!File.Exists("/sys/kernel/btf/vmlinux"))
            Assert.Skip("this kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE needs CONFIG_DEBUG_INFO_BTF");
        if (bpftool && !File.Exists("/usr/sbin/bpftool") && !File.Exists("/usr/bin/bpftool"))
            Assert.Skip("bpftool is not installed (apt-get install bpftool) to compare with");
    }

    /// <summary>Field offsets in core_xdp.c's struct results.</summary>
    private static class Results
    {
        public const int Length = 0, ProgPut = 8, MissingSymbol = 16, FrameSize = 24, Ifindex = 28, QueueIndex = 32,
            DataOffset = 36, FrameSizeExists = 40, MissingFieldExists = 44, MissingFieldValue = 48, TypeExists = 52,
            MissingTypeExists = 56, BuffSize = 60, TxValue = 64, TxExists = 68, MissingEnumExists = 72, PktTypeOffset = 76,
            PktTypeSize = 80, PktTypeLShift = 84, PktTypeRShift = 88, ProtocolOffset = 92, ProtocolSigned = 96,
            KernelVersion = 100, HasCookie = 104, BpfJit = 108, BpfSyscall = 112, Hz = 116, NotAConfig = 120,
            CalledMissingKfunc = 124, Hostname = 128;
    }

    private static string? KernelConfig(string name)
    {
        using var file = File.OpenRead("/proc/config.gz");
        using var reader = new StreamReader(new GZipStream(file, CompressionMode.Decompress));
        for (string? line; (line = reader.ReadLine()) is not null;)
            if (line.StartsWith(name + "=", StringComparison.Ordinal))
                return line[(name.Length + 1)..];
        return null;
    }

    private static ulong KallsymsAddress(string name)
    {
        foreach (var line in File.ReadLines("/proc/kallsyms"))
        {
            var parts = line.Split(' ', '\t');
            if (parts.Length >= 3 && parts[2] == name)
                return ulong.Parse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        return 0;
    }

    [Fact]
    public void CoreXdpReadsKernelStructsWhereThisKernelHasThem()
    {
        RequireBtfAndBpftool();
        if (!File.Exists("/proc/config.gz"))
            Assert.Skip("no /proc/config.gz to check the __kconfig values against");
        using var leaks = new FdLeakCheck();
        var spec = ObjectFile.Open(Repo.TestData("core_xdp.o"));
        using var c = BpfCollection.Load(spec);
        var packet = new byte[100];
        packet[12] = 0x08;
        var run = c.Program("core_xdp").TestRun(new TestRunOptions { Data = packet });
        Assert.Equal(XdpAction.Pass, run.Action);

        var r = c.Map(".bss").Lookup(new byte[4])!;
        uint U32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(offset));
        ulong U64(int offset) => BinaryPrimitives.ReadUInt64LittleEndian(r.AsSpan(offset));

        // Reads through bpf_cast_to_kern_ctx's struct xdp_buff, laid out differently from the local declaration.
        Assert.Equal(100ul, U64(Results.Length));
        Assert.Equal(1u, U32(Results.Ifindex)); // a test run receives on lo
        Assert.Equal(0u, U32(Results.QueueIndex));
        Assert.True(U32(Results.FrameSize) >= 100, $"frame_sz {U32(Results.FrameSize)}");
        Assert.Equal(0u, U32(Results.DataOffset)); // data is the kernel's first member, the local third
        // Existence: the field, type and enumerator the kernel lacks are 0, the guarded load of the missing field
        // was poisoned and never ran.
        Assert.Equal(1u, U32(Results.FrameSizeExists));
        Assert.Equal(0u, U32(Results.MissingFieldExists));
        Assert.Equal(0u, U32(Results.MissingFieldValue));
        Assert.Equal(1u, U32(Results.TypeExists));
        Assert.Equal(0u, U32(Results.MissingTypeExists));
        Assert.Equal(3u, U32(Results.TxValue)); // XDP_TX in the kernel; the local enum says 77
        Assert.Equal(1u, U32(Results.TxExists));
        Assert.Equal(0u, U32(Results.MissingEnumExists));
        Assert.Equal(0u, U32(Results.ProtocolSigned)); // __be16
        Assert.Equal(64u - 3, U32(Results.PktTypeRShift)); // a 3-bit field

        // The sizes and offsets the kernel's BTF gives (bpftool's reading of it).
        var (code, dump) = Bpffs.Run("bpftool", "btf dump file /sys/kernel/btf/vmlinux");
        if (code == 0)
        {
            var size = Regex.Match(dump, @"STRUCT 'xdp_buff' size=(\d+)");
            Assert.Equal(uint.Parse(size.Groups[1].Value, CultureInfo.InvariantCulture), U32(Results.BuffSize));
        }

        // __ksym and __kconfig externs.
        Assert.Equal(KallsymsAddress("bpf_prog_put"), U64(Results.ProgPut));
        Assert.NotEqual(0ul, U64(Results.ProgPut));
        Assert.Equal(0ul, U64(Results.MissingSymbol));
        Assert.Equal(0u, U32(Results.CalledMissingKfunc));
        var release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim().Split('.', '-');
        uint version = (uint.Parse(release[0], CultureInfo.InvariantCulture) << 16) | (uint.Parse(release[1], CultureInfo.InvariantCulture) << 8)
            | Math.Min(255u, uint.Parse(release[2], CultureInfo.InvariantCulture));
        Assert.Equal(version, U32(Results.KernelVersion));
        Assert.Equal(1u, U32(Results.HasCookie));
        Assert.Equal(KernelConfig("CONFIG_BPF_JIT") switch { "y" => 1u, "m" => 2u, _ => 0u }, U32(Results.BpfJit));
        Assert.Equal(KernelConfig("CONFIG_BPF_SYSCALL") == "y" ? 1u : 0u, U32(Results.BpfSyscall) & 0xff);
        Assert.Equal(uint.Parse(KernelConfig("CONFIG_HZ")!, CultureInfo.InvariantCulture), U32(Results.Hz));
        Assert.Equal(0u, U32(Results.NotAConfig)); // weak and unknown
        var hostname = KernelConfig("CONFIG_DEFAULT_HOSTNAME")!.Trim('"');
        var expected = hostname[..Math.Min(hostname.Length, 7)];
        Assert.Equal(expected, Encoding.ASCII.GetString(r, Results.Hostname, 8).TrimEnd('\0'));

        // The .kconfig map is read-only for programs and frozen, like .rodata.
        var kconfig = c.Map(".kconfig");
        Assert.Contains(".kconfig", kconfig.GetInfo().Name);
        Assert.ThrowsAny<BpfSyscallException>(() => kconfig.Update(new byte[4], new byte[kconfig.ValueSize]));
    }

    /// <summary>The instructions the kernel accepted from us and from libbpf for the same object, map ids aside.</summary>
    [Theory]
    [InlineData("core_xdp.o", "core_xdp")]
    [InlineData("core.o", "core_probe")]
    [InlineData("btf_attach.o", "on_switch")]
    public void LoadedCodeEqualsLibbpfs(string obj, string program)
    {
        RequireBtfAndBpftool(bpftool: true);
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var ours = Path.Combine(fs.Path, "ours");
        var theirs = Path.Combine(fs.Path, "libbpf");
        Directory.CreateDirectory(ours);
        using (var c = BpfCollection.Load(ObjectFile.Open(Repo.TestData(obj)), new BpfCollectionOptions { PinDirectory = fs.Path }))
            c.Program(program).Pin(Path.Combine(ours, program));
        var (code, output) = Bpffs.Run("bpftool", $"prog loadall {Repo.TestData(obj)} {theirs}");
        Assert.True(code == 0, "bpftool prog loadall failed:\n" + output);

        string Xlated(string pin)
        {
            var (c, text) = Bpffs.Run("bpftool", $"prog dump xlated pinned {pin}");
            Assert.True(c == 0, text);
            return MapId().Replace(text, "map[id:N]");
        }
        var a = Xlated(Path.Combine(ours, program));
        var b = Xlated(Path.Combine(theirs, program));
        Assert.Equal(b, a);
    }

    /// <summary>
    /// A program written the way libbpf-based tools are (vmlinux.h from bpftool, libbpf's own bpf_core_read.h
    /// macros: BPF_CORE_READ chains, a probed bitfield read, field existence, enum values, a __kconfig extern, a
    /// ring buffer, tp_btf and kprobe sections): the kernel gets the same instructions from SharpBpf as from libbpf.
    /// </summary>
    [Fact]
    public void AProgramBuiltAgainstVmlinuxHLoadsAsWithLibbpf()
    {
        RequireBtfAndBpftool(bpftool: true);
        if (!File.Exists("/usr/include/bpf/bpf_core_read.h"))
            Assert.Skip("libbpf's headers are not installed (apt-get install libbpf-dev) to build the program");
        using var leaks = new FdLeakCheck();
        var dir = Directory.CreateTempSubdirectory("sharpbpf-vmlinux-");
        try
        {
            var (code, header) = Bpffs.Run("bpftool", "btf dump file /sys/kernel/btf/vmlinux format c");
            Assert.True(code == 0, header);
            File.WriteAllText(Path.Combine(dir.FullName, "vmlinux.h"), header);
            var obj = Repo.CompileBpf(dir.FullName, "exec_watch", """
                #define __TARGET_ARCH_x86
                #include "vmlinux.h"
                #include <bpf/bpf_helpers.h>
                #include <bpf/bpf_core_read.h>
                #include <bpf/bpf_tracing.h>

                struct event {
                	int pid;
                	int ppid;
                	unsigned int reset_on_fork;
                	int has_field;
                	char comm[16];
                };

                struct {
                	__uint(type, BPF_MAP_TYPE_RINGBUF);
                	__uint(max_entries, 4096);
                } events SEC(".maps");

                extern unsigned int LINUX_KERNEL_VERSION __kconfig;
                const volatile unsigned int min_version = 0;

                SEC("tp_btf/sched_process_exec")
                int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
                {
                	struct event *e;

                	if (LINUX_KERNEL_VERSION < min_version)
                		return 0;
                	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
                	if (!e)
                		return 0;
                	e->pid = BPF_CORE_READ(p, tgid);
                	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
                	e->reset_on_fork = BPF_CORE_READ_BITFIELD_PROBED(p, sched_reset_on_fork);
                	e->has_field = bpf_core_field_exists(p->sched_contributes_to_load);
                	bpf_core_read_str(e->comm, sizeof(e->comm), &p->comm);
                	bpf_ringbuf_submit(e, 0);
                	return 0;
                }

                SEC("kprobe/do_unlinkat")
                int BPF_KPROBE(on_unlink, int dfd, struct filename *name)
                {
                	const char *path = BPF_CORE_READ(name, name);
                	char buf[32];

                	bpf_probe_read_kernel_str(buf, sizeof(buf), path);
                	bpf_printk("unlink %s (%d)", buf, bpf_core_enum_value(enum pid_type, PIDTYPE_TGID));
                	return 0;
                }

                char LICENSE[] SEC("license") = "GPL";
                """);
            using var fs = new Bpffs();
            var ours = Path.Combine(fs.Path, "ours");
            var theirs = Path.Combine(fs.Path, "libbpf");
            Directory.CreateDirectory(ours);
            using (var c = BpfCollection.Load(ObjectFile.Open(obj), new BpfCollectionOptions { PinDirectory = fs.Path }))
            {
                Assert.NotEmpty(c.Programs["on_exec"].GetInfo().MapIds);
                foreach (var p in c.Programs.Values)
                    p.Pin(Path.Combine(ours, p.Name));
            }
            var (loaded, output) = Bpffs.Run("bpftool", $"prog loadall {obj} {theirs}");
            Assert.True(loaded == 0, "bpftool prog loadall failed:\n" + output);
            foreach (var name in new[] { "on_exec", "on_unlink" })
            {
                var (ca, a) = Bpffs.Run("bpftool", $"prog dump xlated pinned {Path.Combine(ours, name)}");
                var (cb, b) = Bpffs.Run("bpftool", $"prog dump xlated pinned {Path.Combine(theirs, name)}");
                Assert.True(ca == 0 && cb == 0, a + b);
                Assert.Equal(MapId().Replace(b, "map[id:N]"), MapId().Replace(a, "map[id:N]"));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [GeneratedRegex(@"map\[id:\d+\]")]
    private static partial Regex MapId();

    [Fact]
    public void ProgramsAttachedByBtfFindTheirTarget()
    {
        RequireBtfAndBpftool();
        using var leaks = new FdLeakCheck();
        using var c = BpfCollection.Load(ObjectFile.Open(Repo.TestData("btf_attach.o")));
        var vmlinux = KernelSymbols.Vmlinux;
        var info = c.Program("on_switch").GetInfo();
        Assert.Equal(vmlinux.FindByName("btf_trace_sched_switch", BtfKind.Typedef)!.Id, info.AttachBtfId);
    }

    [Fact]
    public void TypedKernelVariablesGoToTheKernelAsItsBtfIds()
    {
        RequireBtfAndBpftool();
        using var leaks = new FdLeakCheck();
        var spec = ObjectFile.Open(Repo.TestData("ksyms.o"));
        // The kernel finds a typed __ksym's address by the name of the BTF VAR it is given. Without
        // CONFIG_KALLSYMS_ALL it cannot (libbpf's load fails the same way); the name in its refusal shows that the
        // id was right.
        if (KallsymsAddress("bpf_prog_active") == 0)
        {
            var e = Assert.Throws<BpfVerifierException>(() => BpfCollection.Load(spec));
            Assert.Contains("kernel symbol 'bpf_prog_active'", e.Log);
        }
        else
        {
            using var c = BpfCollection.Load(spec);
            Assert.NotEqual(0u, c.Program("ksym_user").Id);
        }
    }

    [Fact]
    public void MissingStrongExternsAreClearErrors()
    {
        RequireBtfAndBpftool();
        using var leaks = new FdLeakCheck();
        var dir = Directory.CreateTempSubdirectory("sharpbpf-core-");
        try
        {
            var obj = Repo.CompileBpf(dir.FullName, "missing", """
                #include <linux/bpf.h>
                #define SEC(name) __attribute__((section(name), used))
                extern int CONFIG_SHARPBPF_NO_SUCH_OPTION __attribute__((section(".kconfig")));
                SEC("xdp")
                int missing(struct xdp_md *ctx) { return CONFIG_SHARPBPF_NO_SUCH_OPTION ? XDP_DROP : XDP_PASS; }
                char _license[] SEC("license") = "GPL";
                """);
            var e = Assert.ThrowsAny<BpfException>(() => BpfCollection.Load(ObjectFile.Open(obj)));
            Assert.Contains("CONFIG_SHARPBPF_NO_SUCH_OPTION", e.Message);
            Assert.Contains("__weak", e.Message);

            var kfunc = Repo.CompileBpf(dir.FullName, "nokfunc", """
                #include <linux/bpf.h>
                #define SEC(name) __attribute__((section(name), used))
                extern void bpf_sharpbpf_no_such_kfunc(void) __attribute__((section(".ksyms")));
                SEC("xdp")
                int nokfunc(struct xdp_md *ctx) { bpf_sharpbpf_no_such_kfunc(); return XDP_PASS; }
                char _license[] SEC("license") = "GPL";
                """);
            e = Assert.ThrowsAny<BpfException>(() => BpfCollection.Load(ObjectFile.Open(kfunc)));
            Assert.Contains("bpf_sharpbpf_no_such_kfunc", e.Message);
            Assert.Contains("no such function", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void AnUnguardedAccessToAMissingFieldIsRefusedAtThePoisonedInstruction()
    {
        RequireBtfAndBpftool();
        using var leaks = new FdLeakCheck();
        var dir = Directory.CreateTempSubdirectory("sharpbpf-core-");
        try
        {
            var obj = Repo.CompileBpf(dir.FullName, "poisoned", """
                #include <linux/bpf.h>
                #define SEC(name) __attribute__((section(name), used))
                extern void *bpf_cast_to_kern_ctx(void *obj) __attribute__((section(".ksyms")));
                struct xdp_buff___poisoned { long sharpbpf_no_such_field; } __attribute__((preserve_access_index));
                SEC("xdp")
                int poisoned(struct xdp_md *ctx)
                {
                    struct xdp_buff___poisoned *b = bpf_cast_to_kern_ctx(ctx);
                    return b->sharpbpf_no_such_field ? XDP_DROP : XDP_PASS;
                }
                char _license[] SEC("license") = "GPL";
                """);
            var e = Assert.Throws<BpfVerifierException>(() => BpfCollection.Load(ObjectFile.Open(obj)));
            Assert.Contains($"{BtfCoreRelocator.PoisonHelperId}", e.Log); // "invalid func unknown#195896080"
            Assert.NotNull(e.SourceLine);
            Assert.Contains("sharpbpf_no_such_field", e.SourceLine!.Text);
            Assert.Contains("poisoned", e.Message);
            Assert.Contains("xdp_buff___poisoned", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
