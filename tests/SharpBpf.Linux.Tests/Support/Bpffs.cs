using System.Diagnostics;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>A private bpffs mounted on a fresh temporary directory, unmounted and removed on dispose.</summary>
internal sealed class Bpffs : IDisposable
{
    public Bpffs()
    {
        Path = Directory.CreateTempSubdirectory("sharpbpf-bpffs-").FullName;
        var (code, output) = Run("mount", $"-t bpf bpf {Path}");
        if (code != 0)
        {
            Directory.Delete(Path);
            Assert.Skip($"cannot mount a bpffs here ({output.Trim()})");
        }
    }

    public string Path { get; }

    public void Dispose()
    {
        // Unmounting drops every pin made under it.
        Run("umount", Path);
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }

    public static (int Code, string Output) Run(string file, string args, string? workingDirectory = null)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args)
        {
            WorkingDirectory = workingDirectory ?? "",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file} {args}: timed out");
        }
        return (p.ExitCode, stdout.Result + stderr);
    }
}
