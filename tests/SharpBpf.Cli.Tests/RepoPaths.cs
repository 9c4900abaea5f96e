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
