using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SharpBpf.Asm;
using SharpBpf.Objects;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf disasm FILE.o [--program NAME] [--source] [--syntax llvm|asm] [--json]</c>: the linked instructions
/// of each program, in the syntax llvm-objdump prints (or the assembler's), optionally interleaved with the C source
/// lines that BTF line info names.
/// </summary>
public static class DisasmCommand
{
    public static Command Build()
    {
        var file = new Argument<FileInfo>("file") { Description = "A BPF ELF object built by clang (-target bpf)." };
        var program = new Option<string?>("--program", "-p") { Description = "Only this program (by function name)." };
        var source = new Option<bool>("--source", "-S") { Description = "Interleave C source lines from BTF line info." };
        var syntax = new Option<string>("--syntax") { Description = "llvm (as llvm-objdump -d prints) or asm (the assembler's syntax).", DefaultValueFactory = _ => "llvm" };
        syntax.AcceptOnlyFromAmong("llvm", "asm");
        var json = new Option<bool>("--json") { Description = "Print stable JSON (documented in docs/cli.md)." };
        var command = new Command("disasm", "Disassemble the programs of a BPF object file.") { file, program, source, syntax, json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var info = parse.GetRequiredValue(file);
            var name = parse.GetValue(program);
            if (ProgramLoading.Open("disasm", info.FullName, error) is not { } spec
                || ProgramLoading.SelectAll("disasm", info.FullName, spec, name, error) is not { } programs)
                return CliApp.ExitRefused;

            var chosenSyntax = parse.GetValue(syntax) == "asm" ? AsmSyntax.Conformance : AsmSyntax.Llvm;
            if (parse.GetValue(json))
            {
                var report = programs.Select(p => Describe(p, chosenSyntax)).ToList();
                output.WriteLine(JsonSerializer.Serialize(report, InspectCommand.JsonOptions));
                return 0;
            }

            bool withSource = parse.GetValue(source);
            foreach (var p in programs)
                WriteListing(output, p, chosenSyntax, withSource);
            return 0;
        });
        return command;
    }

    internal sealed record InstructionReport(int Index, int RawIndex, string Bytes, string Text, string? Reference, string? Source);

    internal sealed record ProgramListing(string Name, string Section, IReadOnlyList<InstructionReport> Instructions);

    internal static ProgramListing Describe(ProgramSpec program, AsmSyntax syntax)
    {
        var rows = new List<InstructionReport>(program.Instructions.Count);
        int raw = 0;
        for (int i = 0; i < program.Instructions.Count; i++)
        {
            var insn = program.Instructions[i];
            var line = program.FindLine(i);
            var source = line is not null && line.InstructionIndex == i ? $"{line.FileName}:{line.Line}: {line.Text.Trim()}" : null;
            rows.Add(new InstructionReport(i, raw, Hex(insn), Disassembler.Format(insn, syntax), insn.Reference, source));
            raw += insn.RawSize;
        }
        return new ProgramListing(program.Name, program.SectionName, rows);
    }

    private static void WriteListing(TextWriter output, ProgramSpec program, AsmSyntax syntax, bool withSource)
    {
        output.WriteLine();
        output.WriteLine($"Disassembly of section {program.SectionName}:");
        output.WriteLine();
        output.WriteLine($"{program.Name}:");
        foreach (var row in Describe(program, syntax).Instructions)
        {
            if (withSource && row.Source is not null)
                output.WriteLine($"; {row.Source}");
            var text = row.Reference is null ? row.Text : $"{row.Text}  ; {row.Reference}";
            output.WriteLine($"{row.RawIndex.ToString(CultureInfo.InvariantCulture),8}:\t{row.Bytes}\t{text}");
        }
    }

    private static string Hex(in Instruction insn) =>
        string.Join(' ', InstructionCodec.Encode([insn]).Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
}
