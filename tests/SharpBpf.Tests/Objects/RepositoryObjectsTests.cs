using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Objects;

/// <summary>Every BPF object committed anywhere in the repository (fixtures and ready-made programs) reads cleanly and consistently.</summary>
public class RepositoryObjectsTests
{
    public static TheoryData<string> Objects()
    {
        var data = new TheoryData<string>();
        foreach (var dir in new[] { "programs", Path.Combine("tests", "testdata") })
        {
            var root = Path.Combine(TestPaths.RepoRoot, dir);
            if (!Directory.Exists(root))
                continue;
            foreach (var file in Directory.GetFiles(root, "*.o", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                data.Add(Path.GetRelativePath(TestPaths.RepoRoot, file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Objects))]
    public void ReadsAndEveryReferenceResolves(string relativePath)
    {
        var spec = ObjectFile.Open(Path.Combine(TestPaths.RepoRoot, relativePath));
        Assert.NotEmpty(spec.Programs);
        Assert.NotEqual("", spec.License);
        foreach (var program in spec.Programs)
        {
            Assert.NotEmpty(program.Instructions);
            Assert.Contains(program.Instructions, i => i.OpCode.Value == 0x95); // exit
            foreach (var insn in program.Instructions)
            {
                if (insn.IsLoadImmediate64 && insn.Src is (Register)LoadImmediateSource.MapFd or (Register)LoadImmediateSource.MapValue)
                    Assert.True(spec.FindMap(insn.Reference!) is not null, $"{program.Name}: lddw names map '{insn.Reference}', which the spec lacks");
            }
            if (spec.Btf is not null && spec.BtfExt is not null)
            {
                Assert.NotEmpty(program.FuncInfos);
                Assert.Equal(0, program.FuncInfos[0].InstructionOffset);
                Assert.Equal(program.Name, spec.Btf[program.FuncInfos[0].TypeId].Name);
            }
        }
        foreach (var map in spec.Maps)
            Assert.True(map.ValueSize > 0 || map.Type is MapType.Ringbuf or MapType.UserRingbuf or MapType.BloomFilter or MapType.PerfEventArray, $"map '{map.Name}' has no value size");
    }
}
