using System.CommandLine;
using System.Text;
using SharpBpf.Asm;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf asm FILE.s [-o FILE] [--no-validate]</c>: assembles the bpf_conformance syntax into raw instruction
/// bytes. Without -o it prints the bytes as hex, one 8-byte slot a line (the format of a conformance -- raw section).
/// </summary>
public static class AsmCommand
{
    public static Command Build()
    {
        var file = new Argument<FileInfo>("file") { Description = "Assembly source in the bpf_conformance syntax (e.g. 'mov32 %r0, 1')" };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "Write the raw instruction bytes to this file instead of printing hex" };
        var noValidate = new Option<bool>("--no-validate") { Description = "Do not check the program against the ISA rules (for fragments)" };
        var command = new Command("asm", "Assemble a program into raw eBPF instruction bytes") { file, output, noValidate };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var config = parse.InvocationConfiguration;
            var path = parse.GetValue(file)!;
            string text;
            try
            {
                text = await File.ReadAllTextAsync(path.FullName, cancellationToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await config.Error.WriteLineAsync($"asm: cannot read {path.Name}: {e.Message}");
                return CliApp.ExitRefused;
            }

            List<Instruction> instructions;
            try
            {
                instructions = Assembler.Assemble(text);
                if (!parse.GetValue(noValidate))
                    InstructionValidator.Validate(instructions);
            }
            catch (AssemblerException e)
            {
                await config.Error.WriteLineAsync($"{path.Name}:{e.Line}:{e.Column}: error: {e.Detail}");
                return CliApp.ExitRefused;
            }
            catch (InstructionException e)
            {
                await config.Error.WriteLineAsync($"{path.Name}: error: {e.Message}");
                return CliApp.ExitRefused;
            }

            var bytes = InstructionCodec.Encode(instructions);
            if (parse.GetValue(output) is { } outFile)
            {
                try
                {
                    await File.WriteAllBytesAsync(outFile.FullName, bytes, cancellationToken);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    await config.Error.WriteLineAsync($"asm: cannot write {outFile.Name}: {e.Message}");
                    return CliApp.ExitRefused;
                }
                return 0;
            }
            var sb = new StringBuilder();
            for (int i = 0; i < bytes.Length; i += RawInstruction.Size)
                sb.AppendJoin(' ', bytes.Skip(i).Take(RawInstruction.Size).Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture))).Append('\n');
            await config.Output.WriteAsync(sb.ToString());
            return 0;
        });
        return command;
    }
}
