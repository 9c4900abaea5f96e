using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Platform;

public class PlatformTableTests
{
    [Fact]
    public void XdpMayCallMapLookupWithKernelPrototype()
    {
        Assert.True(PlatformTable.Xdp.TryGetHelper(HelperId.MapLookupElem, out var proto));
        Assert.Equal(ReturnKind.MapValueOrNull, proto.Returns);
        Assert.Equal([ArgumentKind.ConstMapPointer, ArgumentKind.MapKey], proto.Arguments);
        Assert.Equal("bpf_map_lookup_elem", proto.Name);
    }

    [Theory]
    [InlineData(HelperId.XdpAdjustHead, true)]
    [InlineData(HelperId.RedirectMap, true)]
    [InlineData(HelperId.RingbufReserve, true)]
    [InlineData(HelperId.SkbLoadBytes, false)]
    [InlineData(HelperId.GetCurrentPidTgid, true)] // in the kernel's base set since 6.x (measured on 6.18)
    [InlineData(HelperId.SkbVlanPush, false)]
    [InlineData(HelperId.SkbStoreBytes, false)]
    public void XdpHelperSet(HelperId id, bool allowed) => Assert.Equal(allowed, PlatformTable.Xdp.Allows(id));

    [Fact]
    public void SocketFilterAndTcHelperSets()
    {
        Assert.True(PlatformTable.SocketFilter.Allows(HelperId.SkbLoadBytes));
        Assert.False(PlatformTable.SocketFilter.Allows(HelperId.SkbStoreBytes));
        Assert.False(PlatformTable.SocketFilter.Allows(HelperId.XdpAdjustHead));
        Assert.True(PlatformTable.SchedCls.Allows(HelperId.SkbStoreBytes));
        Assert.True(PlatformTable.SchedCls.TryGetHelper(HelperId.SkbStoreBytes, out var store));
        Assert.True(store.ChangesPacketData);
        Assert.Same(PlatformTable.Xdp, PlatformTable.For(ProgramType.Xdp));
        // enum bpf_attach_type: BPF_XDP_DEVMAP is 33 (38 is BPF_SK_SKB_VERDICT), as the section table says.
        Assert.Same(PlatformTable.XdpDevmap, PlatformTable.For(ProgramType.Xdp, 33));
        Assert.Same(PlatformTable.XdpDevmap, PlatformTable.For(ProgramType.Xdp, SectionDefinitions.Find("xdp/devmap")?.ExpectedAttachType));
        Assert.Same(PlatformTable.Xdp, PlatformTable.For(ProgramType.Xdp, 38));
        Assert.Null(PlatformTable.For(ProgramType.Kprobe));
    }

    [Fact]
    public void KernelSetIsWiderThanTheModelledOne()
    {
        // bpf_sk_lookup_tcp: XDP may call it in the kernel; SharpBpf does not model socket pointers yet.
        Assert.True(PlatformTable.Xdp.KernelAllows(HelperId.SkLookupTcp));
        Assert.False(PlatformTable.Xdp.Allows(HelperId.SkLookupTcp));
        Assert.False(PlatformTable.Xdp.KernelAllows(HelperId.SkbLoadBytes));
        Assert.False(PlatformTable.SchedCls.KernelAllows(HelperId.RedirectMap));
        foreach (var table in new[] { PlatformTable.Xdp, PlatformTable.SocketFilter, PlatformTable.SchedCls })
            Assert.All(table.Helpers, h => Assert.True(table.KernelAllows(h.Id), $"{table.ProgramType} models {h.Name}, which the kernel refuses"));
    }

    [Fact]
    public void PacketChangingHelpersAreMarked()
    {
        Assert.True(PlatformTable.Xdp.TryGetHelper(HelperId.XdpAdjustTail, out var tail));
        Assert.True(tail.ChangesPacketData);
        Assert.True(PlatformTable.Xdp.TryGetHelper(HelperId.MapUpdateElem, out var update));
        Assert.False(update.ChangesPacketData);
    }

    [Fact]
    public void NamesFollowTheKernel()
    {
        Assert.True(PlatformTable.TryGetPrototype(HelperId.L3CsumReplace, out var l3));
        Assert.Equal("bpf_l3_csum_replace", l3.Name);
        Assert.True(PlatformTable.TryGetPrototype(HelperId.GetPrandomU32, out var prandom));
        Assert.Equal("bpf_get_prandom_u32", prandom.Name);
    }

    [Theory]
    [InlineData(0, 4, false, null)]
    [InlineData(4, 4, false, null)]
    [InlineData(12, 4, false, null)]
    [InlineData(0, 8, false, "whole")]
    [InlineData(0, 2, false, "whole")]
    [InlineData(12, 4, true, "read-only")]
    [InlineData(20, 4, false, "not readable")]
    [InlineData(24, 4, false, "outside")]
    [InlineData(-4, 4, false, "outside")]
    public void XdpMdAccessRules(int offset, int size, bool write, string? error)
    {
        var message = ContextLayout.XdpMd.CheckAccess(offset, size, write, out _);
        if (error is null)
            Assert.Null(message);
        else
            Assert.Contains(error, message);
    }

    [Fact]
    public void XdpMdPointerFields()
    {
        Assert.Equal(ContextFieldKind.PacketStart, ContextLayout.XdpMd.FieldAt(0)!.Kind);
        Assert.Equal(ContextFieldKind.PacketEnd, ContextLayout.XdpMd.FieldAt(4)!.Kind);
        Assert.Equal(ContextFieldKind.PacketMeta, ContextLayout.XdpMd.FieldAt(8)!.Kind);
        Assert.Null(ContextLayout.XdpMdDevmap.CheckAccess(20, 4, false, out _));
    }

    [Fact]
    public void SkBuffRules()
    {
        Assert.Null(ContextLayout.SkBuffSocketFilter.CheckAccess(48, 4, true, out _)); // cb[0]
        Assert.NotNull(ContextLayout.SkBuffSocketFilter.CheckAccess(8, 4, true, out _)); // mark
        Assert.Null(ContextLayout.SkBuffTc.CheckAccess(8, 4, true, out _));
        Assert.NotNull(ContextLayout.SkBuffSocketFilter.CheckAccess(76, 4, false, out _)); // data
        Assert.Null(ContextLayout.SkBuffTc.CheckAccess(76, 4, false, out var data));
        Assert.Equal(ContextFieldKind.PacketStart, data!.Kind);
        Assert.Null(ContextLayout.SkBuffSocketFilter.CheckAccess(0, 2, false, out _)); // narrow len
    }
}
