using SharpBpf.Helpers;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Vm;

public class HelperTableTests
{
    [Theory]
    [InlineData(HelperId.MapLookupElem)]
    [InlineData(HelperId.MapUpdateElem)]
    [InlineData(HelperId.MapDeleteElem)]
    [InlineData(HelperId.MapPushElem)]
    [InlineData(HelperId.MapPopElem)]
    [InlineData(HelperId.MapPeekElem)]
    [InlineData(HelperId.KtimeGetNs)]
    [InlineData(HelperId.KtimeGetBootNs)]
    [InlineData(HelperId.GetPrandomU32)]
    [InlineData(HelperId.GetSmpProcessorId)]
    [InlineData(HelperId.TracePrintk)]
    [InlineData(HelperId.TailCall)]
    [InlineData(HelperId.Redirect)]
    [InlineData(HelperId.RedirectMap)]
    [InlineData(HelperId.XdpAdjustHead)]
    [InlineData(HelperId.XdpAdjustTail)]
    [InlineData(HelperId.XdpAdjustMeta)]
    [InlineData(HelperId.CsumDiff)]
    [InlineData(HelperId.RingbufOutput)]
    [InlineData(HelperId.RingbufReserve)]
    [InlineData(HelperId.RingbufSubmit)]
    [InlineData(HelperId.RingbufDiscard)]
    [InlineData(HelperId.RingbufQuery)]
    [InlineData(HelperId.XdpLoadBytes)]
    [InlineData(HelperId.XdpStoreBytes)]
    [InlineData(HelperId.XdpGetBuffLen)]
    [InlineData(HelperId.ForEachMapElem)]
    [InlineData(HelperId.Loop)]
    public void XdpProgramsCanCall(HelperId id)
    {
        Assert.True(HelperTable.Xdp.TryGet((int)id, out var helper), $"{id} missing from the XDP helper table");
        Assert.Equal((int)id, helper.Id);
        Assert.True(PlatformTable.Xdp.Allows(id));
        Assert.NotNull(helper.Method);
    }

    [Fact]
    public void EveryHelperOfTheTableIsAllowedByThePlatform()
    {
        foreach (var helper in HelperTable.Xdp.All)
            Assert.True(PlatformTable.Xdp.Allows((HelperId)helper.Id), helper.Name);
    }

    [Fact]
    public void KernelNamesAreSnakeCase()
    {
        Assert.Equal("bpf_map_lookup_elem", HelperTable.KernelName(HelperId.MapLookupElem));
        Assert.Equal("bpf_xdp_adjust_head", HelperTable.KernelName(HelperId.XdpAdjustHead));
    }
}
