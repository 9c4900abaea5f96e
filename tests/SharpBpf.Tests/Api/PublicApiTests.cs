using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Api;

/// <summary>
/// The public surface of the core library, snapshotted in docs/api/SharpBpf.txt so that every API change shows in
/// review. After an intended change: <c>SHARPBPF_UPDATE_API=1 dotnet test --filter PublicApi</c> rewrites it.
/// </summary>
public class PublicApiTests
{
    [Fact]
    public void CoreLibraryApiMatchesTheSnapshot() =>
        ApiSnapshot.Check(typeof(BpfException).Assembly, Path.Combine(TestPaths.RepoRoot, "docs", "api", "SharpBpf.txt"));
}
