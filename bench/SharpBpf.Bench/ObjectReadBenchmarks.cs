using BenchmarkDotNet.Attributes;
using SharpBpf.Asm;
using SharpBpf.Elf;
using SharpBpf.Objects;

namespace SharpBpf.Bench;

/// <summary>
/// Reading an object (ELF, BTF, BTF.ext, relocation, linking) against decoding its code alone, in the same run,
/// on the largest committed fixture (tests/testdata/big.o, about 4000 instructions and 2200 line records).
/// Instructions per second = instructions / mean time.
/// </summary>
[MemoryDiagnoser]
public class ObjectRead
{
    private byte[] _bytes = null!;
    private ReadOnlyMemory<byte>[] _code = null!;

    [GlobalSetup]
    public void Setup()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
            dir = dir.Parent;
        _bytes = File.ReadAllBytes(Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), "tests", "testdata", "big.o"));
        var elf = ElfFile.Parse(_bytes);
        _code = [.. elf.Sections.Where(s => s.IsExecutable && s.Size > 0).Select(elf.GetContents)];
    }

    [Benchmark(Baseline = true)]
    public int DecodeOnly()
    {
        int n = 0;
        foreach (var c in _code)
            n += InstructionCodec.Decode(c.Span).Count;
        return n;
    }

    [Benchmark]
    public int ObjectFileRead() => ObjectFile.Read(_bytes, "big").Programs.Sum(p => p.Instructions.Count);
}
