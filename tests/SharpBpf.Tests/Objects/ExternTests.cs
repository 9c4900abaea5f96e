using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Platform;

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
}
