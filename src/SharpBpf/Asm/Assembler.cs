using System.Globalization;

namespace SharpBpf.Asm;

/// <summary>
/// Assembles the bpf_conformance assembly syntax into instructions. One instruction a line; <c>#</c> starts a
/// comment; <c>name:</c> defines a label. Examples:
/// <code>
///   mov32 %r0, 1            add %r0, %r1            neg %r0               be16 %r0
///   lddw %r0, 0x1122334455667788                    lddw %r1, map_fd 3    (pseudo forms: map_fd, map_value,
///   ldxdw %r0, [%r1+8]      ldxsb %r0, [%r10-1]     stw [%r1], 5          btf_id, func, map_idx, map_idx_value)
///   stxdw [%r10-8], %r1     lock fetch add [%r1], %r2                     lock cmpxchg32 [%r1+4], %r2
///   jeq %r1, 5, label       jne32 %r1, %r2, +3      ja label              ja32 label (gotol)
///   call 5 (helper)         call local f            call %r2 (callx)      exit
///   movsx864 %r0, %r1       sdiv %r0, 3             ldabsw 0x10           ldindb %r1, 2
/// </code>
/// Jump targets are labels or signed raw-slot offsets (<c>+3</c>, <c>-1</c>); labels resolve to raw-slot offsets,
/// an lddw counting two slots. As in the reference assembler, <c>exit</c> used as a target means the first exit
/// instruction when no label of that name exists. Immediates are decimal (signed 32-bit range) or hex (up to
/// 32 bits, two's complement); lddw takes any 64-bit value. The result is not validated; see
/// <see cref="InstructionValidator"/>.
/// </summary>
public static class Assembler
{
    private static readonly (string Keyword, LoadImmediateSource Source)[] LoadImmediateKinds =
    [
        ("map_fd", LoadImmediateSource.MapFd), ("map_value", LoadImmediateSource.MapValue), ("btf_id", LoadImmediateSource.BtfId),
        ("func", LoadImmediateSource.Function), ("map_idx", LoadImmediateSource.MapIndex), ("map_idx_value", LoadImmediateSource.MapIndexValue),
    ];

    /// <summary>The lddw pseudo-source keyword for a src form (null for the plain immediate).</summary>
    public static string? LoadImmediateKeyword(LoadImmediateSource source) =>
        LoadImmediateKinds.FirstOrDefault(k => k.Source == source).Keyword;

    /// <summary>Assembles <paramref name="text"/>. Throws <see cref="AssemblerException"/> with line and column.</summary>
    public static List<Instruction> Assemble(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var state = new State();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
            state.AssembleLine(lines[i].TrimEnd('\r'), i + 1);
        state.ResolveFixups();
        return state.Output;
    }

    private readonly record struct Token(string Text, int Column);

    private sealed record Fixup(int Index, int Slot, string Label, int Line, int Column, bool InImmediate);

    private sealed class State
    {
        public readonly List<Instruction> Output = [];
        private readonly Dictionary<string, int> _labels = new(StringComparer.Ordinal);
        private readonly List<Fixup> _fixups = [];
        private int _slot;
        private int _firstExitSlot = -1;
        private int _line;

        private AssemblerException Error(int column, string message) => new(_line, column, message);

        public void AssembleLine(string line, int lineNumber)
        {
            _line = lineNumber;
            int hash = line.IndexOf('#');
            if (hash >= 0)
                line = line[..hash];

            int pos = SkipSpace(line, 0);
            if (pos >= line.Length)
                return;

            // Labels: "name:" possibly followed by an instruction on the same line.
            int wordEnd = WordEnd(line, pos);
            while (wordEnd < line.Length && line[wordEnd] == ':')
            {
                string label = line[pos..wordEnd];
                if (!IsIdentifier(label))
                    throw Error(pos + 1, $"invalid label name '{label}'");
                if (!_labels.TryAdd(label, _slot))
                    throw Error(pos + 1, $"label '{label}' is defined twice");
                pos = SkipSpace(line, wordEnd + 1);
                if (pos >= line.Length)
                    return;
                wordEnd = WordEnd(line, pos);
            }

            var mnemonicToken = new Token(line[pos..wordEnd], pos + 1);
            string mnemonic = mnemonicToken.Text.ToLowerInvariant();
            pos = SkipSpace(line, wordEnd);

            if (mnemonic == "lock")
            {
                // lock [fetch] op [dst+off], src
                if (pos >= line.Length)
                    throw Error(mnemonicToken.Column, "'lock' needs an operation, e.g. 'lock add [%r1+0], %r2'");
                int end = WordEnd(line, pos);
                string op = line[pos..end].ToLowerInvariant();
                int opColumn = pos + 1;
                pos = SkipSpace(line, end);
                if (op == "fetch")
                {
                    if (pos >= line.Length)
                        throw Error(opColumn, "'lock fetch' needs an operation (add, or, and, xor)");
                    end = WordEnd(line, pos);
                    op = "fetch " + line[pos..end].ToLowerInvariant();
                    pos = SkipSpace(line, end);
                }
                mnemonic = "lock " + op;
                if (!IsaTable.ByMnemonic.ContainsKey(mnemonic))
                    throw Error(opColumn, $"unknown atomic operation '{op}'");
            }
            else if (mnemonic == "call")
            {
                if (pos < line.Length)
                {
                    int end = WordEnd(line, pos);
                    string kind = line[pos..end].ToLowerInvariant();
                    if (kind is "local" or "kfunc" or "runtime" or "helper")
                    {
                        mnemonic = kind switch { "local" => "call local", "helper" => "call", _ => "call kfunc" };
                        pos = SkipSpace(line, end);
                    }
                    else if (kind.StartsWith('%') || IsBareRegister(kind))
                    {
                        mnemonic = "callx";
                    }
                }
            }

            var operands = SplitOperands(line, pos, mnemonicToken.Column);
            var entries = FindEntries(mnemonic, mnemonicToken);
            var entry = ChooseEntry(entries, operands, mnemonicToken);
            var insn = Encode(entry, operands, mnemonicToken);
            if (entry.Form == OperandForm.None && entry.Mnemonic == "exit" && _firstExitSlot < 0)
                _firstExitSlot = _slot;
            Output.Add(insn);
            _slot += insn.RawSize;
        }

        private IsaEntry[] FindEntries(string mnemonic, Token token)
        {
            if (IsaTable.ByMnemonic.TryGetValue(mnemonic, out var entries))
                return entries;
            string? alias = mnemonic switch
            {
                "gotol" => "ja32",
                "swap16" => "bswap16",
                "swap32" => "bswap32",
                "swap64" => "bswap64",
                _ when mnemonic.EndsWith("64", StringComparison.Ordinal) => mnemonic[..^2],
                _ => null,
            };
            // "add64" and friends: the 64-bit ALU spelled with an explicit suffix.
            if (alias is not null && IsaTable.ByMnemonic.TryGetValue(alias, out entries)
                && (!mnemonic.EndsWith("64", StringComparison.Ordinal) || entries.All(e => (e.OpCode & 0x07) == (byte)InstructionClass.Alu64)))
                return entries;
            throw Error(token.Column, $"unknown mnemonic '{token.Text}'");
        }

        private IsaEntry ChooseEntry(IsaEntry[] entries, List<Token> operands, Token mnemonic)
        {
            if (entries.Length == 1)
                return entries[0];
            var first = entries[0];
            if (first.Form is OperandForm.DstImm64)
            {
                // lddw %rX, [kind] value
                if (operands.Count == 2)
                {
                    string text = operands[1].Text;
                    int space = text.IndexOfAny([' ', '\t']);
                    if (space > 0)
                    {
                        string keyword = text[..space];
                        foreach (var (kw, src) in LoadImmediateKinds)
                        {
                            if (kw == keyword)
                                return entries.First(e => e.SelectorValue == (int)src);
                        }
                        throw Error(operands[1].Column, $"unknown lddw form '{keyword}' (expected one of {string.Join(", ", LoadImmediateKinds.Select(k => k.Keyword))})");
                    }
                }
                return entries.First(e => e.SelectorValue == 0);
            }
            // K and X forms of one operation: the operand after dst says which (register or immediate).
            if (operands.Count >= 2)
            {
                bool isRegister = LooksLikeRegister(operands[1].Text);
                foreach (var e in entries)
                {
                    bool wantsRegister = e.Form is OperandForm.DstSrc or OperandForm.DstSrcTarget;
                    if (wantsRegister == isRegister)
                        return e;
                }
                throw Error(operands[1].Column, isRegister
                    ? $"'{mnemonic.Text}' takes an immediate here, not a register"
                    : $"'{mnemonic.Text}' takes a register here, not '{operands[1].Text}'");
            }
            return entries[0];
        }

        private static int ExpectedOperands(OperandForm form) => form switch
        {
            OperandForm.None => 0,
            OperandForm.Dst or OperandForm.Target or OperandForm.TargetImm or OperandForm.Helper or OperandForm.LocalCall
                or OperandForm.KernelFunction or OperandForm.RegisterCall or OperandForm.AbsImm => 1,
            OperandForm.DstImmTarget or OperandForm.DstSrcTarget => 3,
            _ => 2,
        };

        private Instruction Encode(IsaEntry entry, List<Token> ops, Token mnemonic)
        {
            int expected = ExpectedOperands(entry.Form);
            if (ops.Count != expected)
            {
                string name = entry.Mnemonic == "callx" ? "call" : entry.Mnemonic;
                throw Error(ops.Count > expected ? ops[expected].Column : mnemonic.Column,
                    $"'{name}' takes {expected} operand{(expected == 1 ? "" : "s")}, found {ops.Count}");
            }
            var t = entry.Template;
            switch (entry.Form)
            {
                case OperandForm.None:
                    return t;
                case OperandForm.Dst:
                case OperandForm.RegisterCall:
                    return t with { Dst = ParseRegister(ops[0]) };
                case OperandForm.DstImm:
                    return t with { Dst = ParseRegister(ops[0]), Constant = ParseImm32(ops[1]) };
                case OperandForm.DstSrc:
                    return t with { Dst = ParseRegister(ops[0]), Src = ParseRegister(ops[1]) };
                case OperandForm.DstImm64:
                {
                    var dst = ParseRegister(ops[0]);
                    var valueToken = ops[1];
                    if (entry.SelectorValue != 0)
                    {
                        int space = valueToken.Text.IndexOfAny([' ', '\t']);
                        int skip = SkipSpace(valueToken.Text, space);
                        valueToken = new Token(valueToken.Text[skip..], valueToken.Column + skip);
                        if (entry.SelectorValue == (int)LoadImmediateSource.Function && IsIdentifier(valueToken.Text))
                        {
                            _fixups.Add(new Fixup(Output.Count, _slot, valueToken.Text, _line, valueToken.Column, InImmediate: true));
                            return t with { Dst = dst };
                        }
                    }
                    return t with { Dst = dst, Constant = ParseImm64(valueToken) };
                }
                case OperandForm.DstMem:
                {
                    var (reg, off) = ParseMemory(ops[1]);
                    return t with { Dst = ParseRegister(ops[0]), Src = reg, Offset = off };
                }
                case OperandForm.MemImm:
                {
                    var (reg, off) = ParseMemory(ops[0]);
                    return t with { Dst = reg, Offset = off, Constant = ParseImm32(ops[1]) };
                }
                case OperandForm.MemSrc:
                {
                    var (reg, off) = ParseMemory(ops[0]);
                    return t with { Dst = reg, Offset = off, Src = ParseRegister(ops[1]) };
                }
                case OperandForm.Target:
                    return t with { Offset = ParseTarget16(ops[0]) };
                case OperandForm.TargetImm:
                case OperandForm.LocalCall:
                    return t with { Constant = ParseTarget32(ops[0]) };
                case OperandForm.DstImmTarget:
                    return t with { Dst = ParseRegister(ops[0]), Constant = ParseImm32(ops[1]), Offset = ParseTarget16(ops[2]) };
                case OperandForm.DstSrcTarget:
                    return t with { Dst = ParseRegister(ops[0]), Src = ParseRegister(ops[1]), Offset = ParseTarget16(ops[2]) };
                case OperandForm.Helper:
                case OperandForm.KernelFunction:
                case OperandForm.AbsImm:
                    return t with { Constant = ParseImm32(ops[0]) };
                case OperandForm.IndSrcImm:
                    return t with { Src = ParseRegister(ops[0]), Constant = ParseImm32(ops[1]) };
                default:
                    throw new System.Diagnostics.UnreachableException($"operand form {entry.Form}");
            }
        }

        private Register ParseRegister(Token token)
        {
            string text = token.Text;
            string digits = text.StartsWith("%r", StringComparison.OrdinalIgnoreCase) ? text[2..]
                : IsBareRegister(text) ? text[1..] : "";
            if (digits.Length is 0 or > 2 || !digits.All(char.IsAsciiDigit))
                throw Error(token.Column, $"expected a register (%r0-%r10), found '{text}'");
            int n = int.Parse(digits, CultureInfo.InvariantCulture);
            if (n > 10)
                throw Error(token.Column, $"invalid register '{text}' (registers are %r0-%r10)");
            return (Register)n;
        }

        private (Register Register, short Offset) ParseMemory(Token token)
        {
            string text = token.Text;
            if (text.Length < 3 || text[0] != '[' || text[^1] != ']')
                throw Error(token.Column, $"expected a memory operand like [%r1+8], found '{text}'");
            string inner = text[1..^1];
            int sign = inner.IndexOfAny(['+', '-']);
            string regText = (sign < 0 ? inner : inner[..sign]).Trim();
            var reg = ParseRegister(new Token(regText, token.Column + 1 + inner.IndexOf(regText, StringComparison.Ordinal)));
            if (sign < 0)
                return (reg, 0);
            string offText = inner[sign..].Replace(" ", "", StringComparison.Ordinal).Replace("\t", "", StringComparison.Ordinal);
            return (reg, ParseOffset(new Token(offText, token.Column + 1 + sign)));
        }

        private short ParseOffset(Token token)
        {
            if (!TryParseInteger(token.Text, out bool negative, out ulong magnitude, out bool hex))
                throw Error(token.Column, $"expected an offset, found '{token.Text}'");
            long value = negative ? -(long)Math.Min(magnitude, 1UL << 40) : (long)Math.Min(magnitude, 1UL << 40);
            long max = hex && !negative ? ushort.MaxValue : short.MaxValue;
            if (value < short.MinValue || value > max)
                throw Error(token.Column, $"offset {token.Text} is out of the 16-bit range");
            return unchecked((short)value);
        }

        private short ParseTarget16(Token token)
        {
            if (token.Text.StartsWith('+') || token.Text.StartsWith('-'))
                return ParseOffset(token);
            if (!IsIdentifier(token.Text))
                throw Error(token.Column, $"expected a label or a +/- offset, found '{token.Text}'");
            _fixups.Add(new Fixup(Output.Count, _slot, token.Text, _line, token.Column, InImmediate: false));
            return 0;
        }

        private int ParseTarget32(Token token)
        {
            if (token.Text.StartsWith('+') || token.Text.StartsWith('-'))
                return ParseImm32(token);
            if (!IsIdentifier(token.Text))
                throw Error(token.Column, $"expected a label or a +/- offset, found '{token.Text}'");
            _fixups.Add(new Fixup(Output.Count, _slot, token.Text, _line, token.Column, InImmediate: true));
            return 0;
        }

        private int ParseImm32(Token token)
        {
            if (!TryParseInteger(token.Text, out bool negative, out ulong magnitude, out bool hex))
                throw Error(token.Column, $"expected an immediate, found '{token.Text}'");
            // Decimal immediates must fit a signed 32-bit value; hex ones may use all 32 bits (0x80000000 is
            // int.MinValue), as the conformance files write them.
            bool ok = negative ? magnitude <= 0x8000_0000UL : magnitude <= (hex ? uint.MaxValue : (ulong)int.MaxValue);
            if (!ok)
                throw Error(token.Column, $"immediate {token.Text} is out of the 32-bit range");
            return negative ? unchecked((int)-(long)magnitude) : unchecked((int)(uint)magnitude);
        }

        private long ParseImm64(Token token)
        {
            if (!TryParseInteger(token.Text, out bool negative, out ulong magnitude, out _))
                throw Error(token.Column, $"expected a 64-bit immediate, found '{token.Text}'");
            if (negative && magnitude > 0x8000_0000_0000_0000UL)
                throw Error(token.Column, $"immediate {token.Text} is out of the 64-bit range");
            return negative ? unchecked(-(long)magnitude) : unchecked((long)magnitude);
        }

        public void ResolveFixups()
        {
            foreach (var f in _fixups)
            {
                int target;
                if (!_labels.TryGetValue(f.Label, out target))
                {
                    if (f.Label == "exit" && _firstExitSlot >= 0)
                        target = _firstExitSlot;
                    else
                        throw new AssemblerException(f.Line, f.Column, $"unknown label '{f.Label}'");
                }
                long delta = (long)target - f.Slot - 1;
                var insn = Output[f.Index];
                if (f.InImmediate)
                {
                    Output[f.Index] = insn with { Constant = (int)delta };
                }
                else
                {
                    if (delta is < short.MinValue or > short.MaxValue)
                        throw new AssemblerException(f.Line, f.Column, $"jump to '{f.Label}' is too far for a 16-bit offset ({delta} slots); use ja32");
                    Output[f.Index] = insn with { Offset = (short)delta };
                }
            }
        }

        private List<Token> SplitOperands(string line, int pos, int mnemonicColumn)
        {
            var result = new List<Token>();
            if (pos >= line.Length)
                return result;
            int start = pos;
            int depth = 0;
            for (int i = pos; i <= line.Length; i++)
            {
                char c = i < line.Length ? line[i] : ',';
                if (c == '[') depth++;
                else if (c == ']') depth--;
                if (c == ',' && depth <= 0)
                {
                    string raw = line[start..Math.Min(i, line.Length)];
                    string trimmed = raw.Trim();
                    int column = start + (raw.Length - raw.TrimStart().Length) + 1;
                    if (trimmed.Length == 0)
                        throw Error(i < line.Length ? i + 1 : mnemonicColumn, "empty operand");
                    result.Add(new Token(trimmed, column));
                    start = i + 1;
                }
            }
            return result;
        }
    }

    private static int SkipSpace(string s, int pos)
    {
        while (pos < s.Length && char.IsWhiteSpace(s[pos]))
            pos++;
        return pos;
    }

    private static int WordEnd(string s, int pos)
    {
        while (pos < s.Length && !char.IsWhiteSpace(s[pos]) && s[pos] != ',' && s[pos] != ':')
            pos++;
        return pos;
    }

    private static bool IsIdentifier(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_' || s[0] == '.') && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.');

    private static bool IsBareRegister(string s) =>
        s.Length is 2 or 3 && (s[0] is 'r' or 'R') && s[1..].All(char.IsAsciiDigit);

    private static bool LooksLikeRegister(string s) => s.StartsWith('%') || IsBareRegister(s);

    /// <summary>Parses [+|-](0x hex | decimal) into sign and magnitude; false on bad syntax or a magnitude above 64 bits.</summary>
    internal static bool TryParseInteger(string text, out bool negative, out ulong magnitude, out bool hex)
    {
        negative = false;
        magnitude = 0;
        hex = false;
        var s = text.AsSpan();
        if (s.Length > 0 && (s[0] == '+' || s[0] == '-'))
        {
            negative = s[0] == '-';
            s = s[1..];
        }
        if (s.Length > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        {
            hex = true;
            return ulong.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out magnitude);
        }
        return s.Length > 0 && s.ToString().All(char.IsAsciiDigit)
            && ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out magnitude);
    }
}

/// <summary>Assembly text that cannot be assembled. The message starts with "line L, column C:".</summary>
public class AssemblerException : BpfException
{
    public AssemblerException(int line, int column, string message)
        : base($"line {line}, column {column}: {message}")
    {
        Line = line;
        Column = column;
        Detail = message;
    }

    /// <summary>1-based line of the error.</summary>
    public int Line { get; }

    /// <summary>1-based column of the error.</summary>
    public int Column { get; }

    /// <summary>The message without the position.</summary>
    public string Detail { get; }
}
