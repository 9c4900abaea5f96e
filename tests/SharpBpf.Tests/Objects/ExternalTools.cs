using System.Diagnostics;

namespace SharpBpf.Tests.Objects;

/// <summary>Runs the LLVM and bpftool programs the cross-check tests compare against, when they are installed.</summary>
public static class ExternalTools
{
    /// <summary>The full path of a program on PATH (or in /usr/sbin, where bpftool lives), or null.</summary>
    public static string? Find(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Append("/usr/sbin").Append("/sbin");
        foreach (var dir in dirs)
        {
            if (dir.Length == 0)
                continue;
            var path = Path.Combine(dir, name);
            if (File.Exists(path))
                return path;
        }
        return null;
    }

    /// <summary>The tool's path, or skips the test saying which tool is missing.</summary>
    public static string Require(string name)
    {
        var path = Find(name);
        if (path is null)
            Assert.Skip($"{name} is not installed, so this cross-check cannot run here");
        return path;
    }

    /// <summary>Runs a tool to completion (bounded by a timeout) and returns its standard output.</summary>
    public static string Run(string tool, params string[] arguments)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{tool} {string.Join(' ', arguments)} did not finish in 60 s");
        }
        if (process.ExitCode != 0)
            Assert.Fail($"{tool} {string.Join(' ', arguments)} exited with {process.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }
}
