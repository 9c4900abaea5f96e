using SharpBpf.Tests.Support;

namespace SharpBpf.Linux.Tests.Api;

/// <summary>
/// The public surface of the Linux backend, snapshotted in docs/api/SharpBpf.Linux.txt. After an intended change:
/// <c>SHARPBPF_UPDATE_API=1 dotnet test --filter PublicApi</c> rewrites it.
/// </summary>
public class PublicApiTests
{
    [Fact]
    public void LinuxBackendApiMatchesTheSnapshot() =>
        ApiSnapshot.Check(typeof(BpfCollection).Assembly, Path.Combine(TestPaths.RepoRoot, "docs", "api", "SharpBpf.Linux.txt"));
}
