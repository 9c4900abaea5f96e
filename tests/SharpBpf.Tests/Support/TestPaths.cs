namespace SharpBpf.Tests.Support;

/// <summary>Where the tests find the repository's own test data and the shared reference vectors.</summary>
public static class TestPaths
{
    /// <summary>The repository root: the folder that holds SharpBpf.slnx.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>tests/testdata in the repository.</summary>
    public static string TestData => Path.Combine(RepoRoot, "tests", "testdata");

    /// <summary>The shared reference data beside the clone (../shared), or SHARPBPF_SHARED when set.</summary>
    public static string SharedDir =>
        Environment.GetEnvironmentVariable("SHARPBPF_SHARED") is { Length: > 0 } dir
            ? dir
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    /// <summary>The bpf_conformance vectors, or null when they are absent (tests then skip saying so).</summary>
    public static string? ConformanceDir =>
        Directory.Exists(Path.Combine(SharedDir, "bpf_conformance")) ? Path.Combine(SharedDir, "bpf_conformance") : null;

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
