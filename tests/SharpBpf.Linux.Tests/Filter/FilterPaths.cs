namespace SharpBpf.Linux.Tests.Filter;

/// <summary>Finds the repository's committed programs from the test binaries.</summary>
internal static class FilterPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string ProgramObject(string name) => Path.Combine(RepoRoot, "programs", name);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (SharpBpf.slnx) above " + AppContext.BaseDirectory);
    }
}
