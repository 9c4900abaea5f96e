using System.Text;
using SharpBpf.Asm;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Asm;

/// <summary>docs/isa.md carries the opcode table generated from <see cref="IsaTable"/>; this keeps it current.</summary>
public class IsaDocumentTests
{
    private const string Begin = "<!-- isa-table-begin (generated from IsaTable; SHARPBPF_UPDATE_DOCS=1 dotnet test rewrites it) -->";
    private const string End = "<!-- isa-table-end -->";

    internal static string Table()
    {
        var sb = new StringBuilder();
        sb.Append("| opcode | selector | mnemonic | form | must be zero | ISA |\n");
        sb.Append("|---|---|---|---|---|---|\n");
        foreach (var e in IsaTable.Entries)
        {
            string selector = e.Selector switch
            {
                SelectorField.None => "",
                SelectorField.Immediate when e.SelectorValue > 64 || (e.OpCode & 0xe7) == 0xc3 => $"imm=0x{e.SelectorValue:x2}",
                _ => $"{e.Selector.ToString().ToLowerInvariant()}={e.SelectorValue}",
            };
            string zero = e.Unused == UnusedFields.None ? "" : e.Unused.ToString().ToLowerInvariant().Replace("immediate", "imm", StringComparison.Ordinal);
            sb.Append($"| 0x{e.OpCode:x2} | {selector} | `{e.Mnemonic}` | {e.Form} | {zero} | v{(int)e.MinVersion} |\n");
        }
        return sb.ToString();
    }

    [Fact]
    public void DocumentedTableIsCurrent()
    {
        var path = Path.Combine(TestPaths.RepoRoot, "docs", "isa.md");
        var text = File.ReadAllText(path);
        int start = text.IndexOf(Begin, StringComparison.Ordinal);
        int end = text.IndexOf(End, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, "docs/isa.md lacks the generated-table markers");
        string current = text[(start + Begin.Length)..end].Trim('\n');
        string expected = Table().Trim('\n');
        if (current != expected && Environment.GetEnvironmentVariable("SHARPBPF_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, text[..(start + Begin.Length)] + "\n" + expected + "\n" + text[end..]);
            return;
        }
        Assert.True(current == expected, "docs/isa.md's opcode table is out of date: run SHARPBPF_UPDATE_DOCS=1 dotnet test --filter IsaDocumentTests");
    }
}
