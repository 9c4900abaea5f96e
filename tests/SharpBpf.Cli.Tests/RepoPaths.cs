namespace SharpBpf.Cli.Tests;

/// <summary>Where the repository is, found from the test assembly's folder (the folder holding SharpBpf.slnx).</summary>
internal static class RepoPaths
{
    public static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException("repository root not found");
    }
}

/// <summary>Runs the tool in-process, as a user would run it, capturing what it writes.</summary>
internal static class CliRunner
{
    public static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await SharpBpf.Cli.CliApp.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
