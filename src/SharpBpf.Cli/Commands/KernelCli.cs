using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using SharpBpf.Linux;
using SharpBpf.Linux.Features;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>What the kernel commands (prog, map, features) share: the BPF check, errors, output.</summary>
internal static class KernelCli
{
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>False, after one clear sentence on <paramref name="error"/>, when this process cannot use BPF.</summary>
    public static bool EnsureBpf(string command, TextWriter error)
    {
        if (BpfFeatures.Unavailable is not { } why)
            return true;
        error.WriteLine($"sharpbpf {command}: {why}");
        return false;
    }

    /// <summary>Runs a kernel command body, turning refusals (bad input, kernel errors) into exit code 1 and a message.</summary>
    public static int Run(string command, TextWriter error, Func<int> body)
    {
        if (!EnsureBpf(command, error))
            return CliApp.ExitRefused;
        try
        {
            return body();
        }
        catch (BpfException e)
        {
            error.WriteLine($"sharpbpf {command}: {e.Message}");
            return CliApp.ExitRefused;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentException)
        {
            error.WriteLine($"sharpbpf {command}: {e.Message}");
            return CliApp.ExitRefused;
        }
    }

    public static IAnsiConsole Console(TextWriter output)
    {
        bool terminal = output == System.Console.Out && !System.Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!terminal)
            console.Profile.Width = 160;
        return console;
    }

    /// <summary>The <c>--json</c> option of the kernel commands.</summary>
    public static Option<bool> JsonOption() => new("--json") { Description = "Print stable JSON (documented in docs/cli.md)." };

    /// <summary>
    /// A <c>list</c> subcommand over every object of one kind in the kernel (<c>prog list</c>, <c>map list</c>):
    /// a table, or JSON with <c>--json</c>.
    /// </summary>
    public static Command ListCommand<THandle, TInfo>(string commandName, string description, Func<List<uint>> allIds,
        Func<uint, THandle> open, Func<THandle, TInfo> info, Action<TextWriter, IReadOnlyList<TInfo>> writeTable)
        where THandle : IDisposable
    {
        var json = JsonOption();
        var command = new Command("list", description) { json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            return Run(commandName, parse.InvocationConfiguration.Error, () =>
            {
                var infos = InfoOfEach(allIds(), open, info);
                if (parse.GetValue(json))
                    WriteJson(output, infos);
                else
                    writeTable(output, infos);
                return 0;
            });
        });
        return command;
    }

    /// <summary>
    /// Opens each object by id and reads its info. Ids are machine-wide and live: an object freed between the
    /// listing and the opening (ENOENT) is skipped.
    /// </summary>
    public static List<TInfo> InfoOfEach<THandle, TInfo>(IEnumerable<uint> ids, Func<uint, THandle> open, Func<THandle, TInfo> info)
        where THandle : IDisposable
    {
        var infos = new List<TInfo>();
        foreach (var id in ids)
        {
            try
            {
                using var handle = open(id);
                infos.Add(info(handle));
            }
            catch (BpfSyscallException e) when (e.ErrorNumber == Errno.ENOENT)
            {
            }
        }
        return infos;
    }

    public static void WriteJson<T>(TextWriter output, T value) => output.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>Bytes as lower-case hex pairs separated by spaces ("01 00 00 00"), as bpftool prints them.</summary>
    public static string Hex(ReadOnlySpan<byte> bytes)
    {
        var text = Convert.ToHexStringLower(bytes);
        var result = new System.Text.StringBuilder(text.Length * 3 / 2);
        for (int i = 0; i < text.Length; i += 2)
        {
            if (i > 0)
                result.Append(' ');
            result.Append(text, i, 2);
        }
        return result.ToString();
    }

    /// <summary>Parses hex bytes: "01 00 00 00", "01000000" or "0x01 0x00..." (each byte two digits).</summary>
    public static byte[] ParseHex(string text, string what)
    {
        var digits = new System.Text.StringBuilder();
        foreach (var part in text.Split([' ', ',', ':'], StringSplitOptions.RemoveEmptyEntries))
            digits.Append(part.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? part[2..] : part);
        if (digits.Length % 2 != 0)
            throw new FormatException($"{what} '{text}' is not whole hex bytes (two digits each)");
        try
        {
            return Convert.FromHexString(digits.ToString());
        }
        catch (FormatException)
        {
            throw new FormatException($"{what} '{text}' is not hex bytes");
        }
    }

    public static string Invariant(uint value) => value.ToString(CultureInfo.InvariantCulture);
}
