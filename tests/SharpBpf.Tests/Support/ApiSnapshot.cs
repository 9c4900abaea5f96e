using PublicApiGenerator;

namespace SharpBpf.Tests.Support;

/// <summary>Compares an assembly's public API with a committed text file.</summary>
public static class ApiSnapshot
{
    public static void Check(System.Reflection.Assembly assembly, string snapshotPath)
    {
        var actual = assembly.GeneratePublicApi(new ApiGeneratorOptions { IncludeAssemblyAttributes = false }).ReplaceLineEndings("\n");
        if (Environment.GetEnvironmentVariable("SHARPBPF_UPDATE_API") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(snapshotPath)!);
            File.WriteAllText(snapshotPath, actual);
            return;
        }
        Assert.True(File.Exists(snapshotPath), $"no API snapshot at {snapshotPath}: run the tests with SHARPBPF_UPDATE_API=1 to create it");
        var expected = File.ReadAllText(snapshotPath).ReplaceLineEndings("\n");
        if (expected == actual)
            return;
        var expectedLines = expected.Split('\n');
        var actualLines = actual.Split('\n');
        int i = 0;
        while (i < expectedLines.Length && i < actualLines.Length && expectedLines[i] == actualLines[i])
            i++;
        Assert.Fail($"the public API of {assembly.GetName().Name} differs from {Path.GetFileName(snapshotPath)} at line {i + 1}:\n" +
            $"  snapshot: {(i < expectedLines.Length ? expectedLines[i] : "<end>")}\n  actual:   {(i < actualLines.Length ? actualLines[i] : "<end>")}\n" +
            "If the change is intended, rerun with SHARPBPF_UPDATE_API=1 and commit the snapshot.");
    }
}
