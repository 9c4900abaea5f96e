using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Objects;

public class SectionDefinitionTests
{
    [Theory]
    [InlineData("xdp", ProgramType.Xdp, 37u, 0u)]
    [InlineData("xdp.frags", ProgramType.Xdp, 37u, 32u)]
    [InlineData("xdp/devmap", ProgramType.Xdp, 33u, 0u)]
    [InlineData("xdp.frags/devmap", ProgramType.Xdp, 33u, 32u)]
    [InlineData("xdp/cpumap", ProgramType.Xdp, 35u, 0u)]
    [InlineData("tc", ProgramType.SchedCls, null, 0u)]
    [InlineData("tc/ingress", ProgramType.SchedCls, 46u, 0u)]
    [InlineData("classifier", ProgramType.SchedCls, null, 0u)]
    [InlineData("socket", ProgramType.SocketFilter, null, 0u)]
    [InlineData("kprobe/do_exit", ProgramType.Kprobe, null, 0u)]
    [InlineData("kprobe", ProgramType.Kprobe, null, 0u)]
    [InlineData("kretprobe/do_exit", ProgramType.Kprobe, null, 0u)]
    [InlineData("kprobe.multi/vfs_*", ProgramType.Kprobe, 42u, 0u)]
    [InlineData("tracepoint/syscalls/sys_enter_execve", ProgramType.Tracepoint, null, 0u)]
    [InlineData("tp/sched/sched_switch", ProgramType.Tracepoint, null, 0u)]
    [InlineData("raw_tp/sched_switch", ProgramType.RawTracepoint, null, 0u)]
    [InlineData("fentry/do_exit", ProgramType.Tracing, 24u, 0u)]
    [InlineData("fentry.s/do_exit", ProgramType.Tracing, 24u, 16u)]
    [InlineData("lsm/file_open", ProgramType.Lsm, 27u, 0u)]
    [InlineData("cgroup_skb/ingress", ProgramType.CgroupSkb, 0u, 0u)]
    [InlineData("sk_lookup", ProgramType.SkLookup, 36u, 0u)]
    public void KnownSectionsMapAsLibbpfDoes(string section, ProgramType type, uint? attach, uint flags)
    {
        var d = SectionDefinitions.Find(section);
        Assert.NotNull(d);
        Assert.Equal((type, attach, flags), (d.Value.Type, d.Value.ExpectedAttachType, d.Value.Flags));
    }

    [Theory]
    [InlineData("xdp_custom")]   // exact-match entries do not match longer names
    [InlineData("xdp/other")]
    [InlineData("kprobex/do_exit")] // '+' entries need the name alone or followed by '/'
    [InlineData("socket1")]
    [InlineData(".text")]
    [InlineData("")]
    public void OtherSectionsHaveNoConvention(string section) => Assert.Null(SectionDefinitions.Find(section));
}
