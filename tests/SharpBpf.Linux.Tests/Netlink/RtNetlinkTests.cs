using SharpBpf.Linux.Net;
using SharpBpf.Linux.Netlink;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Netlink;

public sealed class RtNetlinkTests
{
    [Fact]
    public void Interfaces_AreFoundByNameAndIndex_InTheirNamespace()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            var byName = NetInterfaces.Find(KernelTestEnvironment.Veth1);
            Assert.NotNull(byName);
            Assert.Equal(env.Veth1Index, byName.Index);
            Assert.Equal("veth", byName.Kind);
            Assert.True(byName.IsUp);
            Assert.Equal(1500, byName.Mtu);
            Assert.Matches("^([0-9a-f]{2}:){5}[0-9a-f]{2}$", byName.MacAddress!);

            var byIndex = NetInterfaces.Find(env.Veth0Index);
            Assert.Equal(KernelTestEnvironment.Veth0, byIndex?.Name);

            var all = NetInterfaces.List();
            Assert.Equal(["lo", "veth0", "veth1"], all.Select(i => i.Name).Order().ToArray());
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void AnotherNamespace_IsListedByPath_FromOutside()
    {
        using var env = KernelTestEnvironment.Create();
        var names = NetInterfaces.List(env.Ns.Path).Select(i => i.Name).ToList();
        Assert.Contains(KernelTestEnvironment.Veth0, names);
        Assert.Contains(KernelTestEnvironment.Veth1, names);
        Assert.Equal(env.Veth1Index, NetInterfaces.Find(KernelTestEnvironment.Veth1, env.Ns.Path)?.Index);
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void UnknownInterface_IsNullOrAClearError()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            Assert.Null(NetInterfaces.Find("eth9"));
            Assert.Null(NetInterfaces.Find(9999));
            var error = Assert.Throws<BpfException>(() => NetInterfaces.Resolve("eth9"));
            Assert.Equal("no interface named 'eth9'", error.Message);
            Assert.Equal(env.Veth0Index, NetInterfaces.Resolve(env.Veth0Index.ToString(System.Globalization.CultureInfo.InvariantCulture)).Index);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void KernelRefusal_NamesTheRequestAndErrno()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var client = RtNetlinkClient.Open();
            // Two mode flags at once: rtnetlink refuses before it looks at the (absent) program, without a message.
            var error = Assert.Throws<NetlinkException>(() =>
                client.SetXdp(env.Veth1Index, -1, XdpFlags.SkbMode | XdpFlags.DriverMode));
            Assert.Equal(Errno.EINVAL, error.Errno);
            Assert.Equal($"RTM_SETLINK IFLA_XDP detach on ifindex {env.Veth1Index}: EINVAL (invalid argument)", error.Message);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void Detach_WithNothingAttached_IsAccepted_AndStatusShowsNone()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var client = RtNetlinkClient.Open();
            client.SetXdp(env.Veth1Index, -1, XdpFlags.SkbMode);
            var link = client.GetLink(env.Veth1Index);
            Assert.Equal(XdpAttachmentInfo.None, link!.Xdp.Attached);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void VethPair_IsCreatedAndBroughtUp_AndADuplicateIsRefused()
    {
        using var env = KernelTestEnvironment.Create();
        env.Ns.Run(() =>
        {
            using var client = RtNetlinkClient.Open();
            client.CreateVethPair("vx0", "vx1");
            var a = client.GetLink("vx0");
            var b = client.GetLink("vx1");
            Assert.Equal("veth", a?.Kind);
            Assert.Equal("veth", b?.Kind);
            Assert.Equal(0u, a!.Flags & Rtnl.InterfaceUp);
            client.SetUp(a.Index, true);
            Assert.NotEqual(0u, client.GetLink(a.Index)!.Flags & Rtnl.InterfaceUp);
            client.SetUp(a.Index, false);
            Assert.Equal(0u, client.GetLink(a.Index)!.Flags & Rtnl.InterfaceUp);
            var error = Assert.Throws<NetlinkException>(() => client.CreateVethPair("vx0", "vx2"));
            Assert.Equal(Errno.EEXIST, error.Errno);
        });
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void AttributeReader_StopsAtAMalformedAttribute()
    {
        // | len 8 type 3 "ab\0\0" | len 200 (beyond the buffer) |
        byte[] data = [8, 0, 3, 0, (byte)'a', (byte)'b', 0, 0, 200, 0, 4, 0];
        var seen = new List<ushort>();
        foreach (var attribute in new NetlinkAttributeReader(data))
            seen.Add(attribute.Type);
        Assert.Equal([(ushort)3], seen);
    }

    [Fact]
    public void Request_NestsAndPadsAttributes()
    {
        var bytes = new NetlinkRequest(Rtnl.SetLink, Rtnl.FlagRequest).InterfaceInfo(7)
            .BeginNested((ushort)LinkAttribute.Xdp).S32((ushort)XdpAttribute.Fd, -1).EndNested()
            .String((ushort)LinkAttribute.IfName, "abc")
            .ToArray(42);
        // header 16 + ifinfomsg 16 + nest (4 + 8) + name (4 + "abc\0")
        Assert.Equal(16 + 16 + 12 + 8, bytes.Length);
        Assert.Equal(bytes.Length, BitConverter.ToInt32(bytes, 0));
        Assert.Equal(7, BitConverter.ToInt32(bytes, 20));
        Assert.Equal(12, BitConverter.ToUInt16(bytes, 32));
        Assert.Equal(43 | 0x8000, BitConverter.ToUInt16(bytes, 34));
        Assert.Equal(-1, BitConverter.ToInt32(bytes, 40));
    }
}
