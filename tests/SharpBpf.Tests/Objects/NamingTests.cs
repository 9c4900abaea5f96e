using SharpBpf.Objects;

namespace SharpBpf.Tests.Objects;

public class NamingTests
{
    [Fact]
    public void GlobalDataKernelNamesFollowLibbpf()
    {
        var spec = ObjectFile.Read(Fixtures.Bytes("xdp_maps"), "test_global_data");
        Assert.Equal("test_glo.data", spec.FindMap(".data")!.KernelName);
        Assert.Equal("test_glo.rodata", spec.FindMap(".rodata")!.KernelName);
        Assert.Equal("test_glo.bss", spec.FindMap(".bss")!.KernelName);

        var anonymous = ObjectFile.Read(Fixtures.Bytes("xdp_maps"));
        Assert.Equal(".data", anonymous.FindMap(".data")!.KernelName);

        // Characters the kernel does not accept in names become '_'.
        var odd = ObjectFile.Read(Fixtures.Bytes("xdp_maps"), "a-b c");
        Assert.Equal("a_b_c.bss", odd.FindMap(".bss")!.KernelName);
    }

    [Theory]
    [InlineData("dir/xdp_maps.o", "xdp_maps")]
    [InlineData("prog.bpf.o", "prog")]
    [InlineData("noext", "noext")]
    public void ObjectNameIsTheFileNameUpToItsFirstDot(string path, string expected) =>
        Assert.Equal(expected, ObjectFile.ObjectNameFromPath(path));

    [Fact]
    public void FindLineGivesTheLineCoveringAnInstruction()
    {
        var program = Fixtures.Open("xdp_maps").Programs[0];
        for (int i = 0; i < program.Instructions.Count; i++)
        {
            var line = program.FindLine(i);
            Assert.NotNull(line);
            Assert.True(line.InstructionIndex <= i);
            Assert.DoesNotContain(program.Lines, l => l.InstructionIndex > line.InstructionIndex && l.InstructionIndex <= i);
        }
    }
}
