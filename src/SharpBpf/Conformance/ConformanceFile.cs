using System.Globalization;
using System.Text;
using SharpBpf.Asm;

namespace SharpBpf.Conformance;

/// <summary>
/// One bpf_conformance test file (<c>*.data</c>): a program (assembly or raw bytes), the input memory and the
/// expected r0 or an expected refusal.
/// <code>
///   # comment
///   -- asm            assembly, see <see cref="Assembler"/>
///   -- raw            hex bytes, 8 a line, or 64-bit little-endian words (0x...); wins over -- asm
///   -- mem            hex bytes of the input memory
///   -- result         expected r0 (0x hex or decimal, 64-bit)
///   -- error          the program must be refused; the text is informative
///   -- c, -- no register offset    informative, ignored
/// </code>
/// Any other section makes the file "skipped" (<see cref="SkipReason"/>), as the reference runner does.
/// Parsing never throws for a bad program: an assembly error is kept in <see cref="AssemblyError"/>.
/// </summary>
public sealed class ConformanceFile
{
    private ConformanceFile(string name) => Name = name;

    /// <summary>The test name: the file name without .data.</summary>
    public string Name { get; }

    /// <summary>The assembly text of the <c>-- asm</c> section, or null.</summary>
    public string? AssemblySource { get; private set; }

    /// <summary>The raw program bytes of the <c>-- raw</c> section, or null.</summary>
    public byte[]? RawProgram { get; private set; }

    /// <summary>The program (from -- raw when present, else from -- asm); null when there is none or it did not assemble.</summary>
    public List<Instruction>? Instructions { get; private set; }

    /// <summary>Why the program could not be assembled or decoded, or null.</summary>
    public BpfException? AssemblyError { get; private set; }

    /// <summary>The input memory (empty when the file has no -- mem).</summary>
    public byte[] Memory { get; private set; } = [];

    /// <summary>The expected r0, or null.</summary>
    public ulong? ExpectedResult { get; private set; }

    /// <summary>The text of the -- error section (may be empty) when the program must be refused, else null.</summary>
    public string? ExpectedError { get; private set; }

    /// <summary>True when the file says the program must be refused.</summary>
    public bool ExpectsError => ExpectedError is not null;

    /// <summary>Why the reference runner would skip this file (an unknown section), or null.</summary>
    public string? SkipReason { get; private set; }

    /// <summary>Reads and parses a .data file.</summary>
    public static ConformanceFile Load(string path) =>
        Parse(File.ReadAllText(path), Path.GetFileNameWithoutExtension(path));

    /// <summary>
    /// Parses the text of a .data file. For convenience a single-line string that names an existing file is read
    /// as that file (the same as <see cref="Load"/>); a .data file's text always has several lines.
    /// </summary>
    public static ConformanceFile Parse(string text, string name = "")
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.Contains('\n', StringComparison.Ordinal) && text.Length > 0 && File.Exists(text))
            return Load(text);
        var file = new ConformanceFile(name);
        var sections = new Dictionary<string, (StringBuilder Text, int FirstLine)>(StringComparer.Ordinal);
        string? current = null;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.StartsWith("--", StringComparison.Ordinal))
            {
                current = line[2..].Trim();
                if (!sections.ContainsKey(current))
                    sections[current] = (new StringBuilder(), i + 2);
                continue;
            }
            if (current is null)
                continue; // the header comment
            sections[current].Text.Append(line).Append('\n');
        }

        foreach (var name2 in sections.Keys)
        {
            if (name2 is not ("asm" or "raw" or "mem" or "result" or "error" or "c" or "no register offset"))
            {
                file.SkipReason ??= $"unknown section '-- {name2}'";
            }
        }

        try
        {
            if (sections.TryGetValue("mem", out var mem))
                file.Memory = ParseHexBytes(mem.Text.ToString(), "mem");
            if (sections.TryGetValue("result", out var result))
                file.ExpectedResult = ParseResult(StripComments(result.Text.ToString()));
        }
        catch (BpfException e)
        {
            file.SkipReason ??= e.Message;
        }
        if (sections.TryGetValue("error", out var error))
            file.ExpectedError = error.Text.ToString().Trim();

        if (sections.TryGetValue("asm", out var asm))
            file.AssemblySource = asm.Text.ToString();

        try
        {
            if (sections.TryGetValue("raw", out var raw))
            {
                file.RawProgram = ParseRaw(raw.Text.ToString());
                file.Instructions = InstructionCodec.Decode(file.RawProgram);
            }
            else if (file.AssemblySource is not null)
            {
                file.Instructions = Assembler.Assemble(file.AssemblySource);
            }
        }
        catch (AssemblerException e)
        {
            // Report lines as lines of the .data file, not of the section.
            int offset = asm.FirstLine - 1;
            file.AssemblyError = new AssemblerException(e.Line + offset, e.Column, e.Detail);
        }
        catch (BpfException e)
        {
            file.AssemblyError = e;
        }
        return file;
    }

    private static string StripComments(string text)
    {
        var sb = new StringBuilder();
        foreach (var line in text.Split('\n'))
        {
            int hash = line.IndexOf('#');
            sb.Append(hash >= 0 ? line[..hash] : line).Append(' ');
        }
        return sb.ToString();
    }

    private static ulong? ParseResult(string text)
    {
        string s = text.Trim();
        if (s.Length == 0)
            return null;
        if (Assembler.TryParseInteger(s, out bool negative, out ulong magnitude, out _))
            return negative ? unchecked(0UL - magnitude) : magnitude;
        throw new BpfException($"-- result: cannot read '{s}' as a 64-bit value");
    }

    /// <summary>Hex bytes separated by white space ("aa bb 11").</summary>
    private static byte[] ParseHexBytes(string text, string section)
    {
        var bytes = new List<byte>();
        foreach (var token in StripComments(text).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var t = token.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? token[2..] : token;
            if (t.Length == 0 || t.Length % 2 != 0 || !t.All(char.IsAsciiHexDigit))
                throw new BpfException($"-- {section}: '{token}' is not hex bytes");
            for (int i = 0; i < t.Length; i += 2)
                bytes.Add(byte.Parse(t.AsSpan(i, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
        }
        return bytes.ToArray();
    }

    /// <summary>Either 8 hex bytes a line, or one 0x-prefixed 64-bit word a line (the slot as a little-endian u64).</summary>
    private static byte[] ParseRaw(string text)
    {
        var bytes = new List<byte>();
        foreach (var rawLine in text.Split('\n'))
        {
            int hash = rawLine.IndexOf('#');
            string line = (hash >= 0 ? rawLine[..hash] : rawLine).Trim();
            if (line.Length == 0)
                continue;
            var tokens = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (tokens.Length == 1 && tokens[0].StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                if (!ulong.TryParse(tokens[0].AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong word))
                    throw new BpfException($"-- raw: '{tokens[0]}' is not a 64-bit hex word");
                for (int i = 0; i < 8; i++)
                    bytes.Add((byte)(word >> (8 * i)));
                continue;
            }
            bytes.AddRange(ParseHexBytes(line, "raw"));
        }
        return bytes.ToArray();
    }

    public override string ToString() => Name;
}
