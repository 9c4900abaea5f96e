using SharpBpf.Objects;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Objects;

/// <summary>The committed BPF objects under tests/testdata, built from tests/testdata/src by build.sh.</summary>
public static class Fixtures
{
    public static string PathOf(string name) => Path.Combine(TestPaths.TestData, name + ".o");

    public static CollectionSpec Open(string name) => ObjectFile.Open(PathOf(name));

    public static byte[] Bytes(string name) => File.ReadAllBytes(PathOf(name));

    /// <summary>Every committed fixture object, by name (without .o).</summary>
    public static IEnumerable<string> All() =>
        Directory.GetFiles(TestPaths.TestData, "*.o").Select(p => Path.GetFileNameWithoutExtension(p)).Order(StringComparer.Ordinal);
}
