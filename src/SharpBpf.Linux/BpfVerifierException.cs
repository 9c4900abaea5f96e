using System.Text;
using System.Text.RegularExpressions;
using SharpBpf.Objects;

namespace SharpBpf.Linux;

/// <summary>
/// The kernel's verifier refused a program. Keeps the whole verifier log; the message shows the log's last lines
/// (where the reason is) and, when the log names an instruction and the object has line info, the C source line.
/// </summary>
public sealed partial class BpfVerifierException : BpfSyscallException
{
    private const int ShownLines = 12;

    internal BpfVerifierException(string programName, int errno, string log, int? rawIndex, int? instructionIndex, SourceLine? source, string? hint = null)
        : base(Format(programName, errno, log, rawIndex, source, hint), "BPF_PROG_LOAD", errno, null)
    {
        ProgramName = programName;
        Log = log;
        RawIndex = rawIndex;
        InstructionIndex = instructionIndex;
        SourceLine = source;
    }

    private BpfVerifierException(BpfVerifierException original, string context)
        : base($"{context}: {original.Message}", original.Command, original.ErrorNumber, original)
    {
        ProgramName = original.ProgramName;
        Log = original.Log;
        RawIndex = original.RawIndex;
        InstructionIndex = original.InstructionIndex;
        SourceLine = original.SourceLine;
    }

    public string ProgramName { get; }

    /// <summary>The complete verifier log.</summary>
    public string Log { get; }

    /// <summary>The raw instruction slot the verifier stopped at (the last one its log names), if any.</summary>
    public int? RawIndex { get; }

    /// <summary>The same instruction as an index into the program's logical instructions (lddw counted once).</summary>
    public int? InstructionIndex { get; }

    /// <summary>The C source line covering that instruction, when the object has BTF line info.</summary>
    public SourceLine? SourceLine { get; }

    public override BpfSyscallException WithContext(string context) => new BpfVerifierException(this, context);

    /// <summary>The raw index of the last instruction the log shows ("12: (61) r1 = ..."), or null.</summary>
    internal static int? LastInstruction(string log)
    {
        int? last = null;
        foreach (Match m in InstructionLine().Matches(log))
            last = int.Parse(m.Groups[1].ValueSpan, System.Globalization.CultureInfo.InvariantCulture);
        return last;
    }

    [GeneratedRegex(@"^(\d+): \([0-9a-f]{2}\)", RegexOptions.Multiline)]
    private static partial Regex InstructionLine();

    private static string Format(string program, int errno, string log, int? rawIndex, SourceLine? source, string? hint)
    {
        var text = new StringBuilder($"load program '{program}': the verifier refused it ({Errno.Name(errno)})");
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // The last line that is not the statistics summary states the reason.
        var reason = lines.LastOrDefault(l => !l.StartsWith("processed ", StringComparison.Ordinal) && !l.StartsWith("verification time", StringComparison.Ordinal) && !l.StartsWith("stack depth", StringComparison.Ordinal));
        if (reason is not null)
            text.Append(": ").Append(reason.Trim());
        if (rawIndex is { } index)
        {
            text.Append($"\n  at instruction {index}");
            if (source is not null)
                text.Append($", {source.FileName}:{source.Line}: {source.Text.Trim()}");
        }
        if (hint is not null)
            text.Append("\n  ").Append(hint);
        if (lines.Length > 0)
        {
            text.Append("\n  last lines of the verifier log:");
            foreach (var line in lines.Skip(Math.Max(0, lines.Length - ShownLines)))
                text.Append("\n    ").Append(line);
        }
        else
        {
            text.Append("\n  (the verifier wrote no log)");
        }
        return text.ToString();
    }
}
