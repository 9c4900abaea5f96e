namespace SharpBpf.Linux.Tests.Support;

/// <summary>Finds the repository (the directory holding SharpBpf.slnx) from the test's output directory.</summary>
internal static class Repo
{
    public static string Root { get; } = Find();

    public static string TestData(string name) => Path.Combine(Root, "tests", "testdata", name);

    public static string Programs(string name) => Path.Combine(Root, "programs", name);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return dir.FullName;
        throw new InvalidOperationException("SharpBpf.slnx not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Compiles a C source into a BPF object in a temp dir with clang-14, or skips when clang-14 is absent.</summary>
    public static string CompileBpf(string directory, string name, string source)
    {
        var clang = "/usr/bin/clang-14";
        if (!File.Exists(clang))
            Assert.Skip("clang-14 is not installed: cannot build the C fixture");
        File.WriteAllText(Path.Combine(directory, name + ".c"), source);
        var (code, output) = Bpffs.Run(clang, $"-O2 -g -target bpf -fdebug-compilation-dir=. -I/usr/include/x86_64-linux-gnu -c {name}.c -o {name}.o", directory);
        Assert.True(code == 0, "clang failed:\n" + output);
        return Path.Combine(directory, name + ".o");
    }
}
