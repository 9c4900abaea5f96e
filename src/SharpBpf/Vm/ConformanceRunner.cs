using System.Globalization;
using SharpBpf.Asm;
using SharpBpf.Conformance;
using SharpBpf.Helpers;

namespace SharpBpf.Vm;

/// <summary>What happened to one bpf_conformance file.</summary>
public enum ConformanceVerdict
{
    Passed,
    Failed,
    /// <summary>The file cannot apply (a section the reference runner also skips, an engine not available).</summary>
    Skipped,
}

/// <summary>The outcome of one file: verdict, why, and for positive files the expected and actual r0.</summary>
public sealed record ConformanceOutcome(string File, ConformanceVerdict Verdict, string Detail, bool Negative,
    ulong? Expected = null, ulong? Actual = null);

/// <summary>
/// Runs bpf_conformance <c>.data</c> files on a VM engine, as the reference runner does: the program (from
/// <c>-- raw</c>, else <c>-- asm</c>) starts with r1 = the address of the <c>-- mem</c> bytes and r2 = their length,
/// runs unverified with every access checked, and must end with r0 = <c>-- result</c>. A negative file (one with an
/// <c>-- error</c> section or under a <c>negative</c> folder) passes when it is refused: it cannot be assembled or
/// loaded, it traps, or its result differs from the one it states.
/// </summary>
public static class ConformanceRunner
{
    /// <summary>Options of conformance runs: checked memory, and registers must be written before they are read.</summary>
    public static VmOptions Options { get; } = new() { CheckMemory = true, RequireInitializedRegisters = true, InstructionBudget = 1L << 24 };

    /// <summary>Runs one file (parsed with <see cref="ConformanceFile"/>, assembled with the project's assembler).</summary>
    public static ConformanceOutcome RunFile(string path, VmEngine engine) => RunFile(path, engine, JitTiering.Tiered);

    /// <summary>Runs one file; on the jit engine, with the code <paramref name="tiering"/> asks for.</summary>
    public static ConformanceOutcome RunFile(string path, VmEngine engine, JitTiering tiering)
    {
        var name = System.IO.Path.GetFileName(path);
        var file = ConformanceFile.Load(path);
        bool negative = file.ExpectsError ||
            System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))) == "negative";
        if (file.SkipReason is { } skip)
        {
            // The reference runner skips such files; a negative one is refused either way.
            return negative
                ? new(name, ConformanceVerdict.Passed, $"refused: {skip}", true)
                : new(name, ConformanceVerdict.Skipped, skip, false);
        }
        if (engine is not (VmEngine.Interpreter or VmEngine.Jit))
            return new(name, ConformanceVerdict.Skipped, $"the {engine.ToName()} engine is not built yet", negative);

        ConformanceOutcome Refused(string why) => negative
            ? new(name, ConformanceVerdict.Passed, $"refused: {why}", true)
            : new(name, ConformanceVerdict.Failed, why, false);

        ulong? expected = file.ExpectedResult;
        if (!negative && expected is null)
            return new(name, ConformanceVerdict.Failed, "no '-- result' section", false);
        if (file.AssemblyError is { } assemblyError)
            return Refused(assemblyError.Message);
        if (file.Instructions is not { } instructions)
            return Refused("no program");

        ulong actual;
        try
        {
            actual = Run(instructions, file.Memory, engine, tiering);
        }
        catch (BpfException ex)
        {
            return Refused(ex.Message);
        }
        if (negative)
        {
            return expected == actual || expected is null
                ? new(name, ConformanceVerdict.Failed, $"ran and returned 0x{actual:x} but should have been refused", true, expected, actual)
                : new(name, ConformanceVerdict.Passed, $"refused: r0 is 0x{actual:x}, not the stated 0x{expected:x}", true, expected, actual);
        }
        return expected == actual
            ? new(name, ConformanceVerdict.Passed, $"r0 = 0x{actual:x}", false, expected, actual)
            : new(name, ConformanceVerdict.Failed, $"r0 = 0x{actual:x}, expected 0x{expected:x}", false, expected, actual);
    }

    /// <summary>Loads and runs a conformance program over <paramref name="memory"/> on the interpreter; returns r0.
    /// Refusals and traps throw (<see cref="VmLoadException"/>, <see cref="VmTrapException"/>).</summary>
    public static ulong Run(IReadOnlyList<Instruction> instructions, byte[] memory) => Run(instructions, memory, VmEngine.Interpreter);

    /// <summary>Loads and runs a conformance program over <paramref name="memory"/> on a VM engine; returns r0.</summary>
    public static ulong Run(IReadOnlyList<Instruction> instructions, byte[] memory, VmEngine engine) =>
        Run(instructions, memory, engine, JitTiering.Tiered);

    /// <summary>Loads and runs a conformance program on a VM engine (the jit engine compiling as
    /// <paramref name="tiering"/> says); returns r0.</summary>
    public static ulong Run(IReadOnlyList<Instruction> instructions, byte[] memory, VmEngine engine, JitTiering tiering)
    {
        var program = VmProgram.Create("conformance", instructions, HelperTable.Conformance, Options with { Engine = engine, JitTiering = tiering });
        using var execution = new VmExecution(Options);
        return program.Run(execution, memory);
    }

    /// <summary>Hex bytes separated by white space (or 64-bit words written as 0x...).</summary>
    public static byte[] ParseHex(string text)
    {
        var bytes = new List<byte>();
        foreach (var token in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            if (token.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && token.Length > 4)
            {
                // A 64-bit instruction word as the suite writes it: little-endian bytes of the value.
                ulong word = ulong.Parse(token.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                for (int i = 0; i < 8; i++)
                    bytes.Add((byte)(word >> (8 * i)));
                continue;
            }
            if (token.Length % 2 != 0)
                throw new FormatException($"'{token}' is not hex bytes");
            for (int i = 0; i < token.Length; i += 2)
                bytes.Add(byte.Parse(token.AsSpan(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        return [.. bytes];
    }
}
