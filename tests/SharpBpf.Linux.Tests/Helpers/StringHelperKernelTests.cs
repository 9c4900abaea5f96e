using System.Text;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests.Helpers;

/// <summary>bpf_strncmp and bpf_probe_read_kernel_str through the xdp_str fixture: the kernel and both VM engines
/// must return the same value and packet.</summary>
public class StringHelperKernelTests
{
    [Theory]
    [InlineData("hello")]   // equal, NUL inside the 8 bytes
    [InlineData("hellp")]   // greater
    [InlineData("abc")]     // less
    [InlineData("hello!!!")] // no NUL in 8 bytes: strncmp sees 'h' 'e' 'l' 'l' 'o' then '!' vs NUL; str copy truncates
    [InlineData("")]
    [InlineData("\u00e9")]  // a byte above 0x7f compares unsigned
    public void StrncmpAndProbeReadKernelStrAnswerAsTheKernelDoes(string text)
    {
        KernelTest.RequireBpf();
        var frame = new byte[14 + 16 + 4];
        frame[12] = 0x88;
        frame[13] = 0xb5;
        var bytes = Encoding.Latin1.GetBytes(text);
        bytes.CopyTo(frame, 14);
        for (int i = 22; i < 30; i++)
            frame[i] = 0x77;
        using var kernel = BpfCollection.Load(ObjectFile.Open(Repo.TestData("xdp_str.o")));
        var expected = kernel.Programs.Values.Single().TestRun(new TestRunOptions { Data = frame });
        Assert.NotEqual(1000UL, expected.ReturnValue);
        foreach (var engine in new[] { VmEngine.Interpreter, VmEngine.Jit })
        {
            using var vm = VmCollection.Load(ObjectFile.Open(Repo.TestData("xdp_str.o")), new VmOptions { Engine = engine });
            var actual = vm.Program("xdp_str").TestRun(new TestRunOptions { Data = frame });
            Assert.Equal((uint)expected.ReturnValue, (uint)actual.ReturnValue);
            Assert.Equal(expected.DataOut, actual.DataOut);
        }
    }
}
