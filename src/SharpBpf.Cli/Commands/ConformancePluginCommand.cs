using System.CommandLine;
using SharpBpf.Asm;
using SharpBpf.Vm;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf conformance-plugin [MEMORY_HEX]</c>: the bpf_conformance runner's plugin protocol. The program arrives
/// on standard input as one line of hex bytes, the memory as one argument of hex bytes; the plugin prints r0 in hex
/// and exits 0, or prints why on standard error and exits 1.
/// </summary>
public static class ConformancePluginCommand
{
    public static Command Build()
    {
        var memory = new Argument<string?>("memory") { Description = "The input memory as hex bytes (may be absent)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("conformance-plugin", "Run one program as a bpf_conformance plugin: program hex on stdin, memory hex as argument, r0 in hex on stdout")
        {
            memory,
        };
        // The reference runner passes its own plugin options through; they do not concern this engine.
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            try
            {
                var program = ConformanceRunner.ParseHex(Console.In.ReadToEnd());
                var bytes = parse.GetValue(memory) is { Length: > 0 } hex ? ConformanceRunner.ParseHex(hex) : [];
                var r0 = ConformanceRunner.Run(InstructionCodec.Decode(program), bytes);
                output.WriteLine(r0.ToString("x"));
                return 0;
            }
            catch (Exception ex) when (ex is BpfException or FormatException)
            {
                error.WriteLine(ex.Message);
                return CliApp.ExitRefused;
            }
        });
        return command;
    }
}
