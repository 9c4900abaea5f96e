using SharpBpf.Asm;
using SharpBpf.Conformance;
using SharpBpf.Helpers;
using SharpBpf.Tests.Support;
using SharpBpf.Vm;
using SharpBpf.Vm.Jit;
using SharpBpf.Vm.Jit.Baseline;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Jit;

/// <summary>The baseline tier: SharpBpf's own x86-64 code generator.</summary>
public class BaselineTests
{
    private static readonly VmOptions Baseline = new() { Engine = VmEngine.Jit, JitTiering = JitTiering.Baseline, InstructionBudget = 100_000 };

    private static void RequireBaseline()
    {
        if (!BaselineCompiler.IsAvailable)
            Assert.Skip("the baseline tier runs on x86-64 Linux only");
    }

    [Fact]
    public void ConformanceProgramsCompileToNativeCode()
    {
        RequireBaseline();
        if (TestPaths.ConformanceDir is not { } dir)
        {
            Assert.Skip("the bpf_conformance vectors are absent (../shared/bpf_conformance or SHARPBPF_SHARED)");
            return;
        }
        int baseline = 0, il = 0;
        var reasons = new Dictionary<string, int>();
        foreach (var path in Directory.EnumerateFiles(dir, "*.data", SearchOption.AllDirectories))
        {
            var file = ConformanceFile.Load(path);
            if (file.Instructions is not { } instructions || file.SkipReason is not null || file.ExpectsError)
                continue;
            VmProgram p;
            try
            {
                p = VmProgram.Create("c", instructions, HelperTable.Conformance, ConformanceRunner.Options with { Engine = VmEngine.Jit, JitTiering = JitTiering.Baseline });
            }
            catch (BpfException)
            {
                continue;
            }
            if (p.JitCode!.Tier == JitTier.Baseline)
            {
                Assert.True(p.JitCode.NativeBytes > 0);
                baseline++;
            }
            else
            {
                il++;
                var why = BaselineCompiler.Unsupported(p) ?? "?";
                reasons[why] = reasons.GetValueOrDefault(why) + 1;
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"baseline {baseline}, il {il}: {string.Join(", ", reasons.Select(r => $"{r.Key} {r.Value}"))}");
        Assert.True(baseline > 200, $"only {baseline} conformance programs compiled to baseline code ({il} to IL)");
    }
}
