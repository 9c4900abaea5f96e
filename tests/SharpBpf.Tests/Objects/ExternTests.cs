using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Vm;

namespace SharpBpf.Tests.Objects;

/// <summary>ksyms.c: a kfunc and a kernel variable, left for the loader to resolve against kernel BTF.</summary>
public class ExternTests
{
    [Fact]
    public void KernelFunctionsAndVariablesKeepTheirNames()
    {
        var spec = Fixtures.Open("ksyms");
        var program = Assert.Single(spec.Programs);
        Assert.Equal(ProgramType.Tracing, program.Type);
        Assert.Equal(23u, program.ExpectedAttachType); // BPF_TRACE_RAW_TP

        var kfuncs = program.Instructions.Where(i => i.OpCode.Value == 0x85 && i.Src == (Register)CallKind.Kfunc).Select(i => i.Reference).ToList();
        Assert.Equal(["bpf_rcu_read_lock", "bpf_rcu_read_unlock"], kfuncs);
        var variable = Assert.Single(program.Instructions, i => i.IsLoadImmediate64);
        Assert.Equal((Register)LoadImmediateSource.BtfId, variable.Src);
        Assert.Equal("bpf_prog_active", variable.Reference);
        Assert.Contains(program.Instructions, i => i.OpCode.Value == 0x85 && i.Src == (Register)CallKind.Helper && i.Constant == 154);

        // The extern section has no ELF section: its DATASEC is left as clang wrote it, for the loader.
        Assert.NotNull(spec.Btf!.FindByName(".ksyms", BtfKind.DataSec));
        Assert.Empty(spec.Maps);
    }

    [Fact]
    public void ExternsAreListedWithTheirKindAndWeakness()
    {
        var spec = Fixtures.Open("core_xdp");
        ExternSpec Extern(string name) => spec.FindExtern(name) ?? throw new Xunit.Sdk.XunitException($"no extern {name}");
        Assert.Equal(ExternKind.KernelFunction, Extern("bpf_cast_to_kern_ctx").Kind);
        Assert.False(Extern("bpf_cast_to_kern_ctx").Weak);
        Assert.True(Extern("bpf_kfunc_not_in_this_kernel").Weak);
        Assert.IsType<BtfFuncProto>(spec.Btf![Extern("bpf_cast_to_kern_ctx").TypeId]);
        Assert.Equal(ExternKind.KernelVariable, Extern("bpf_prog_put").Kind);
        Assert.Equal(0u, Extern("bpf_prog_put").TypeId); // const void: typeless, found in kallsyms
        Assert.True(Extern("no_such_kernel_symbol").Weak);
        Assert.Equal(ExternKind.KernelConfig, Extern("CONFIG_HZ").Kind);

        // ksyms.c's bpf_prog_active is typed (const int).
        var ksyms = Fixtures.Open("ksyms");
        Assert.Equal("int", ksyms.Btf![ksyms.FindExtern("bpf_prog_active")!.TypeId].Name);
    }

    [Fact]
    public void KconfigExternsLiveInAReadOnlyMapLaidOutAsLibbpfLaysThem()
    {
        var spec = Fixtures.Open("core_xdp");
        var map = spec.FindMap(".kconfig")!;
        Assert.Equal(MapType.Array, map.Type);
        Assert.True(map.Freeze);
        Assert.Equal(1u << 7, map.Flags); // BPF_F_RDONLY_PROG
        Assert.Equal("core_xd.kconfig", map.KernelName); // libbpf: object-name prefix cut so the name fits 15 characters
        // Largest alignment first, then smallest size, then name: 4-byte values, 1-byte bools, then the char[8].
        string[] order = ["CONFIG_BPF_JIT", "CONFIG_HZ", "CONFIG_SHARPBPF_NOT_A_CONFIG", "LINUX_KERNEL_VERSION",
            "CONFIG_BPF_SYSCALL", "LINUX_HAS_BPF_COOKIE", "CONFIG_DEFAULT_HOSTNAME"];
        uint[] offsets = [0, 4, 8, 12, 16, 17, 18];
        for (int i = 0; i < order.Length; i++)
            Assert.Equal(offsets[i], spec.FindExtern(order[i])!.Offset);
        Assert.Equal(26u, map.ValueSize);

        // The DATASEC the map's BTF value type names is fixed up the same way, with allocated (not extern) variables.
        var datasec = Assert.IsType<BtfDataSec>(spec.Btf![map.BtfValueTypeId]);
        Assert.Equal(".kconfig", datasec.Name);
        Assert.Equal(26u, datasec.Size);
        Assert.Equal(offsets.Order(), datasec.Variables.Select(v => v.Offset).Order());
        var reparsed = BtfSpec.Parse(spec.Btf.RawBytes.Span);
        Assert.All(((BtfDataSec)reparsed[map.BtfValueTypeId]).Variables, v => Assert.Equal(BtfLinkage.Global, ((BtfVar)reparsed[v.Type]).Linkage));

        // Programs read them as global data of that map.
        var hz = spec.Programs[0].Instructions.Where(i => i.IsLoadImmediate64 && i.Reference == ".kconfig").Select(i => (uint)(i.Constant >> 32)).ToList();
        Assert.Contains(4u, hz);
    }

    [Fact]
    public void TheManagedVmRefusesKernelFunctionsByName()
    {
        // The VM has no kernel: CO-RE relocations keep what the compiler wrote (the object's own types), and a
        // kfunc call is a clear refusal, not a crash.
        var e = Assert.ThrowsAny<BpfException>(() => VmCollection.Load(Fixtures.Open("core_xdp")).Dispose());
        Assert.Contains("kernel function", e.Message);
    }
}
