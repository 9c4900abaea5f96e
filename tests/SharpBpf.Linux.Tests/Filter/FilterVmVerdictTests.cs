using SharpBpf.Linux.Filter;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>
/// The same filter object and scenario table as <see cref="FilterKernelVerdictTests"/>, in the managed VM: the VM
/// must give the kernel's verdicts, hit counts and per-action counters (no root needed).
/// </summary>
public sealed class FilterVmVerdictTests
{
    [Theory]
    [MemberData(nameof(FilterScenarios.Names), MemberType = typeof(FilterScenarios))]
    public void RulesDropExactlyTheMatchingPackets(string name)
    {
        var scenario = FilterScenarios.Get(name);
        var packets = FilterScenarios.Packets;
        using var collection = VmCollection.Load(FilterProgram.LoadSpec(), new VmOptions { CreateMap = SharpBpf.Maps.MapFactory.Create });
        var program = collection.Program(FilterState.ProgramName);
        var state = new FilterState(map => new ManagedFilterMap(collection.Map(map)));
        state.Policy = scenario.Policy;
        var ids = scenario.Rules.Select(state.Add).ToList();

        var actual = packets.Select(p => $"{p.Name}: {program.TestRun(new TestRunOptions { Data = p.Frame }).Action}").ToList();
        var expected = packets.Select((p, i) => $"{p.Name}: {(scenario.Dropped.Contains(i) ? XdpAction.Drop : XdpAction.Pass)}");
        Assert.Equal(expected, actual);

        var hits = state.List().ToDictionary(r => r.Id, r => r.Packets);
        Assert.Equal(scenario.Hits.Select(h => (ulong)h), ids.Select(id => hits[id]));
        var stats = state.ReadStatistics();
        Assert.Equal((ulong)scenario.Dropped.Length, stats.Dropped.Packets);
        Assert.Equal((ulong)(packets.Count - scenario.Dropped.Length), stats.Passed.Packets);
        Assert.Equal(scenario.Dropped.Aggregate(0UL, (sum, i) => sum + (ulong)packets[i].Frame.Length), stats.Dropped.Bytes);
    }

    [Fact]
    public void TheEmbeddedObjectIsTheCommittedOne() =>
        Assert.Equal(File.ReadAllBytes(FilterPaths.ProgramObject("xdp_filter.o")), FilterProgram.ObjectBytes());
}
