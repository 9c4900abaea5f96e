using System.Globalization;
using System.Text.RegularExpressions;
using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Elf;
using SharpBpf.Objects;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Objects;

/// <summary>
/// Compares what the reader sees with what llvm-readelf, llvm-objdump and bpftool print for the same objects, and
/// checks that the committed objects are what build.sh makes from the sources. Each test skips, saying why, when
/// its tool is not installed.
/// </summary>
public partial class CrossCheckTests
{
    public static TheoryData<string> FixtureNames => [.. Fixtures.All()];

    [Fact]
    public void CommittedObjectsAreCurrent()
    {
        var clang = ExternalTools.Require("clang-14");
        var output = Directory.CreateTempSubdirectory("sharpbpf-fixtures-");
        try
        {
            var start = new System.Diagnostics.ProcessStartInfo("sh") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            start.ArgumentList.Add(Path.Combine(TestPaths.TestData, "build.sh"));
            start.ArgumentList.Add(output.FullName);
            start.Environment["CLANG"] = clang;
            using var process = System.Diagnostics.Process.Start(start)!;
            var errors = process.StandardError.ReadToEnd();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(5)), "build.sh did not finish in 5 minutes");
            Assert.True(process.ExitCode == 0, "build.sh failed: " + errors);
            var sources = Directory.GetFiles(Path.Combine(TestPaths.TestData, "src"), "*.c").Select(p => Path.GetFileNameWithoutExtension(p)).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(sources, Fixtures.All().ToList());
            foreach (var name in sources)
            {
                var built = File.ReadAllBytes(Path.Combine(output.FullName, name + ".o"));
                Assert.True(built.AsSpan().SequenceEqual(Fixtures.Bytes(name)),
                    $"tests/testdata/{name}.o is not what build.sh makes from src/{name}.c: run tests/testdata/build.sh and commit the objects");
            }
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void SectionsMatchLlvmReadelf(string fixture)
    {
        var tool = ExternalTools.Require("llvm-readelf-14");
        var elf = ElfFile.Parse(Fixtures.Bytes(fixture));
        var text = ExternalTools.Run(tool, "-S", "--wide", Fixtures.PathOf(fixture));
        var rows = SectionRow().Matches(text).Select(m => (
            Index: int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
            Name: m.Groups[2].Value.Trim(),
            Offset: Convert.ToUInt64(m.Groups[3].Value, 16),
            Size: Convert.ToUInt64(m.Groups[4].Value, 16))).ToList();
        Assert.Equal(elf.Sections.Count, rows.Count);
        foreach (var row in rows)
        {
            var s = elf.Sections[row.Index];
            Assert.Equal((row.Name, row.Offset, row.Size), (s.Name, s.FileOffset, s.Size));
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void SymbolsMatchLlvmReadelf(string fixture)
    {
        var tool = ExternalTools.Require("llvm-readelf-14");
        var elf = ElfFile.Parse(Fixtures.Bytes(fixture));
        var text = ExternalTools.Run(tool, "-s", "--wide", Fixtures.PathOf(fixture));
        var rows = SymbolRow().Matches(text).ToList();
        Assert.Equal(elf.Symbols.Count, rows.Count);
        foreach (var m in rows)
        {
            var s = elf.Symbols[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)];
            Assert.Equal(Convert.ToUInt64(m.Groups[2].Value, 16), s.Value);
            Assert.Equal(ulong.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), s.Size);
            Assert.Equal(m.Groups[4].Value, s.Type switch
            {
                ElfSymbolType.NoType => "NOTYPE", ElfSymbolType.Object => "OBJECT", ElfSymbolType.Function => "FUNC",
                ElfSymbolType.Section => "SECTION", ElfSymbolType.File => "FILE", _ => "?",
            });
            // readelf prints section symbols with their section's name; the symbol itself has none.
            if (s.Type != ElfSymbolType.Section)
                Assert.Equal(m.Groups[5].Value.Trim(), s.Name);
        }
    }

    /// <summary>Every program's own instructions are llvm-objdump's, apart from what relocation rewrites.</summary>
    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void ProgramInstructionsMatchLlvmObjdump(string fixture)
    {
        var tool = ExternalTools.Require("llvm-objdump-14");
        var spec = Fixtures.Open(fixture);
        var text = ExternalTools.Run(tool, "-d", Fixtures.PathOf(fixture));
        var functions = new Dictionary<string, List<byte[]>>();
        List<byte[]>? current = null;
        foreach (var line in text.Split('\n'))
        {
            var label = FunctionLabel().Match(line);
            if (label.Success)
            {
                functions[label.Groups[1].Value] = current = [];
                continue;
            }
            var insn = InstructionLine().Match(line);
            if (insn.Success && current is not null)
                current.Add(Convert.FromHexString(insn.Groups[1].Value.Replace(" ", "", StringComparison.Ordinal)));
        }
        Assert.NotEmpty(spec.Programs);
        foreach (var program in spec.Programs)
        {
            var expected = functions[program.Name];
            Assert.True(expected.Count <= program.Instructions.Count, $"{program.Name}: objdump has {expected.Count} instructions, we have {program.Instructions.Count}");
            for (int i = 0; i < expected.Count; i++)
            {
                var raw = expected[i];
                var ours = program.Instructions[i];
                Assert.Equal(raw[0], ours.OpCode.Value);
                Assert.Equal(raw[1] & 0xf, (int)ours.Dst);
                Assert.Equal(BitConverter.ToInt16(raw, 2), ours.Offset);
                bool relocated = ours.Reference is not null || ours.IsLoadImmediate64 && ours.Src != 0;
                if (!relocated)
                {
                    Assert.Equal(raw[1] >> 4, (int)ours.Src);
                    long constant = ours.IsLoadImmediate64
                        ? (long)((ulong)BitConverter.ToUInt32(raw, 4) | (ulong)BitConverter.ToUInt32(raw, 12) << 32)
                        : BitConverter.ToInt32(raw, 4);
                    Assert.Equal(constant, ours.Constant);
                }
                Assert.Equal(ours.IsLoadImmediate64 ? 16 : 8, raw.Length);
            }
        }
    }

    /// <summary>bpftool reads our fixed-up raw BTF and lists the same types, with DATASEC sizes filled in.</summary>
    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void BtfMatchesBpftool(string fixture)
    {
        var tool = ExternalTools.Require("bpftool");
        var spec = Fixtures.Open(fixture);
        var btf = spec.Btf!;
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, btf.RawBytes.ToArray());
            var text = ExternalTools.Run(tool, "btf", "dump", "file", file);
            var rows = BtfRow().Matches(text).ToList();
            Assert.Equal(btf.Types.Count - 1, rows.Count);
            foreach (var m in rows)
            {
                var type = btf[uint.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)];
                Assert.Equal(m.Groups[2].Value, KindName(type.Kind));
                Assert.Equal(m.Groups[3].Value, type.Name.Length == 0 ? "(anon)" : type.Name);
                if (type is BtfDataSec datasec)
                {
                    Assert.Equal($"size={datasec.Size}", m.Groups[4].Value.Trim().Split(' ')[0]);
                    if (datasec.Name != ".ksyms") // externs: no ELF section to take a size from
                        Assert.NotEqual(0u, datasec.Size);
                }
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string KindName(BtfKind kind) => kind switch
    {
        BtfKind.Int => "INT", BtfKind.Pointer => "PTR", BtfKind.Array => "ARRAY", BtfKind.Struct => "STRUCT",
        BtfKind.Union => "UNION", BtfKind.Enum => "ENUM", BtfKind.Forward => "FWD", BtfKind.Typedef => "TYPEDEF",
        BtfKind.Volatile => "VOLATILE", BtfKind.Const => "CONST", BtfKind.Restrict => "RESTRICT", BtfKind.Func => "FUNC",
        BtfKind.FuncProto => "FUNC_PROTO", BtfKind.Var => "VAR", BtfKind.DataSec => "DATASEC", BtfKind.Float => "FLOAT",
        BtfKind.DeclTag => "DECL_TAG", BtfKind.TypeTag => "TYPE_TAG", BtfKind.Enum64 => "ENUM64", _ => "?",
    };

    [GeneratedRegex(@"^\s*\[\s*(\d+)\] (\S*)\s+[A-Z_]+\s+[0-9a-f]{16} ([0-9a-f]+) ([0-9a-f]+) ", RegexOptions.Multiline)]
    private static partial Regex SectionRow();

    [GeneratedRegex(@"^\s*(\d+): ([0-9a-f]{16})\s+(\d+) (\w+)\s+\w+\s+\w+\s+\w+ ?(.*)$", RegexOptions.Multiline)]
    private static partial Regex SymbolRow();

    [GeneratedRegex(@"^[0-9a-f]{16} <(.+)>:$")]
    private static partial Regex FunctionLabel();

    [GeneratedRegex(@"^\s+\d+:\t((?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?)\t")]
    private static partial Regex InstructionLine();

    [GeneratedRegex(@"^\[(\d+)\] (\w+) '([^']*)'(.*)$", RegexOptions.Multiline)]
    private static partial Regex BtfRow();
}
