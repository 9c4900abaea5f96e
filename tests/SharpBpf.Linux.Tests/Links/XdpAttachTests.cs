using SharpBpf.Linux.Links;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Links;

/// <summary>XDP attach, replace, detach and status on a veth pair in the test's own namespace.</summary>
public sealed class XdpAttachTests
{
    private static readonly TimeSpan s_trafficTimeout = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(XdpAttachMode.Native, false)]
    [InlineData(XdpAttachMode.Skb, false)]
    [InlineData(XdpAttachMode.Native, true)]
    [InlineData(XdpAttachMode.Skb, true)]
    public void Attach_RunsTheProgramOnEveryFrame_AndStatusSaysHow(XdpAttachMode mode, bool netlink)
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        {
            env.Ns.Run(() =>
            {
                using var attachment = XdpHook.Attach(KernelTestEnvironment.Veth1, a.Program, new XdpAttachOptions { Mode = mode, UseNetlink = netlink });
                Assert.Equal(mode, attachment.Mode);
                Assert.Equal(netlink ? XdpAttachMechanism.Netlink : XdpAttachMechanism.Link, attachment.AttachedBy);
                Assert.Equal(a.Id, attachment.ProgramId);

                var status = XdpHook.Query(env.Veth1Index);
                var program = Assert.Single(status.Programs);
                Assert.Equal(mode, program.Mode);
                Assert.Equal(a.Id, program.ProgramId);
                Assert.Equal("count_a", program.Name);
                Assert.Matches("^[0-9a-f]{16}$", program.Tag!);
                Assert.Equal(attachment.AttachedBy, program.AttachedBy);
                Assert.Equal(attachment.Link?.Id, program.LinkId);
                Assert.Empty(XdpHook.Query(env.Veth0Index).Programs);

                Assert.Equal(300, Traffic.SendUdp(env.Veth0Index, 300, s_trafficTimeout));
                Assert.Equal(300ul, a.WaitForCount(300));

                attachment.Detach();
                Assert.Empty(XdpHook.Query(env.Veth1Index).Programs);
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void UnpinnedLink_DetachesWhenDisposed_NetlinkStaysUntilDetached()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        {
            env.Ns.Run(() =>
            {
                XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb }).Dispose();
                Assert.Empty(XdpHook.Query(env.Veth1Index).Programs);

                XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb, UseNetlink = true }).Dispose();
                Assert.Equal(a.Id, Assert.Single(XdpHook.Query(env.Veth1Index).Programs).ProgramId);
                Assert.True(XdpHook.Detach(KernelTestEnvironment.Veth1));
                Assert.False(XdpHook.Detach(KernelTestEnvironment.Veth1));
            });
        }
        env.AssertNoFdLeaks();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NativeThenSkb_IsRefusedAsAModeMix(bool netlink)
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        using (var b = Loaded.Load("count_b"))
        {
            env.Ns.Run(() =>
            {
                using var native = XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Native, UseNetlink = netlink });
                var error = Assert.Throws<BpfException>(() =>
                    XdpHook.Attach(env.Veth1Index, b.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb, UseNetlink = netlink }));
                Assert.StartsWith("native and generic XDP cannot be attached at the same time", error.Message);
                Assert.Contains("EEXIST", error.Message);
                if (netlink)
                {
                    // The kernel's own sentence (netlink extended ack) is kept in the message and the inner exception.
                    var inner = Assert.IsType<SharpBpf.Linux.Netlink.NetlinkException>(error.InnerException);
                    Assert.Contains("at the same time", inner.KernelMessage);
                    Assert.Contains(inner.KernelMessage!, error.Message);
                }
                native.Detach();
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void UpdateIfNoExist_RefusesWhenAProgramIsAttached()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        using (var b = Loaded.Load("count_b"))
        {
            env.Ns.Run(() =>
            {
                var options = new XdpAttachOptions { Mode = XdpAttachMode.Skb, UseNetlink = true, UpdateIfNoExist = true };
                using var first = XdpHook.Attach(env.Veth1Index, a.Program, options);
                var error = Assert.Throws<BpfException>(() => XdpHook.Attach(env.Veth1Index, b.Program, options));
                Assert.StartsWith($"a program is already attached to {KernelTestEnvironment.Veth1}", error.Message);
                Assert.Contains("EBUSY", error.Message);
                // Without the flag netlink replaces.
                using var second = XdpHook.Attach(env.Veth1Index, b.Program, options with { UpdateIfNoExist = false });
                Assert.Equal(b.Id, Assert.Single(XdpHook.Query(env.Veth1Index).Programs).ProgramId);
                second.Detach();
            });
        }
        env.AssertNoFdLeaks();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Replace_WithTheRightExpectedProgram_Replaces_WithAWrongOne_Refuses(bool netlink)
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        using (var b = Loaded.Load("count_b"))
        using (var c = Loaded.Load("count_c"))
        {
            env.Ns.Run(() =>
            {
                var options = new XdpAttachOptions { Mode = XdpAttachMode.Native, UseNetlink = netlink };
                using var first = XdpHook.Attach(env.Veth1Index, a.Program, options);

                var wrong = Assert.Throws<BpfException>(() =>
                    XdpHook.Attach(env.Veth1Index, b.Program, options with { Replace = true, ExpectedProgram = c.Program }));
                Assert.Contains("not the expected one", wrong.Message);
                Assert.Equal(a.Id, Assert.Single(XdpHook.Query(env.Veth1Index).Programs).ProgramId);

                using var replaced = XdpHook.Attach(env.Veth1Index, b.Program, options with { Replace = true, ExpectedProgram = a.Program });
                var now = Assert.Single(XdpHook.Query(env.Veth1Index).Programs);
                Assert.Equal(b.Id, now.ProgramId);
                Assert.Equal(XdpAttachMode.Native, now.Mode);
                // A link is updated in place: same link, new program.
                if (!netlink)
                    Assert.Equal(first.Link!.Id, now.LinkId);
                replaced.Detach();
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void LinkUpdate_WhileTrafficFlows_LosesNoFrame()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        using (var b = Loaded.Load("count_b"))
        {
            // The property is that no frame the sender got out is lost across updates; on a loaded machine the
            // sender may not get them all out before its timeout, so what it sent is the figure to match.
            const int frames = 30_000;
            env.Ns.Run(() =>
            {
                using var attachment = XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Native });
                var link = attachment.Link!;
                var sending = env.Ns.RunConcurrently(() => Traffic.SendUdp(env.Veth0Index, frames, s_trafficTimeout));
                var updates = 0;
                // Swap the programs back and forth for as long as frames flow (bounded by the sender's timeout).
                while (!sending.IsCompleted)
                {
                    link.Update(updates % 2 == 0 ? b.Program : a.Program);
                    updates++;
                }
                var sent = sending.GetAwaiter().GetResult();
                Assert.True(sent >= 1_000, $"the sender got only {sent} of {frames} frames out");
                Assert.True(updates >= 2, $"only {updates} updates happened while traffic flowed");
                var total = WaitForSum(a, b, (ulong)sent);
                Assert.Equal((ulong)sent, total);
                Assert.True(a.Count > 0 && b.Count > 0, $"both programs should have seen frames: a {a.Count}, b {b.Count}");
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void PinnedLink_OutlivesItsHandle_AndRemovingThePinDetaches()
    {
        using var env = KernelTestEnvironment.Create();
        var pin = Path.Combine(env.BpfFs, "xdp_link_veth1");
        using (var a = Loaded.Load("count_a"))
        {
            env.Ns.Run(() =>
            {
                uint linkId;
                using (var attachment = XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb, PinPath = pin }))
                    linkId = attachment.Link!.Id;
                var status = Assert.Single(XdpHook.Query(env.Veth1Index).Programs);
                Assert.Equal(linkId, status.LinkId);

                using (var reopened = XdpLink.OpenPinned(pin))
                {
                    Assert.Equal(linkId, reopened.Id);
                    Assert.Equal(env.Veth1Index, reopened.IfIndex);
                    Assert.Equal(a.Id, reopened.ProgramId);
                }
                Assert.Single(XdpHook.Query(env.Veth1Index).Programs);

                File.Delete(pin);
                // The link's last reference went with the pin; the kernel frees the bpffs inode after an RCU grace
                // period, and the link (detaching the program) with it: soon, not at once.
                Assert.True(Eventually(() => XdpHook.Query(env.Veth1Index).Programs.Count == 0), "still attached 5 s after the pin was removed");
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void NetlinkCannotTakeOrDropAHookALinkOwns()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        using (var b = Loaded.Load("count_b"))
        {
            env.Ns.Run(() =>
            {
                using var attachment = XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Native });
                var linkId = attachment.Link!.Id;
                var expected = $"a bpf_link owns this hook (link id {linkId}): detach it with `sharpbpf xdp detach {KernelTestEnvironment.Veth1}` or remove its pin";

                var detach = Assert.Throws<BpfException>(() => XdpHook.Detach(KernelTestEnvironment.Veth1, XdpAttachMode.Auto, useNetlink: true));
                Assert.StartsWith(expected, detach.Message);
                Assert.Contains("EBUSY", detach.Message);

                var attach = Assert.Throws<BpfException>(() =>
                    XdpHook.Attach(env.Veth1Index, b.Program, new XdpAttachOptions { Mode = XdpAttachMode.Native, UseNetlink = true }));
                Assert.StartsWith(expected, attach.Message);

                // The way the message gives works, and detaches through the link.
                Assert.True(XdpHook.Detach(KernelTestEnvironment.Veth1));
                Assert.Empty(XdpHook.Query(env.Veth1Index).Programs);
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void ALinkCannotTakeANetlinkHook_ButReplaceSwapsTheProgramByNetlink()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        using (var b = Loaded.Load("count_b"))
        {
            env.Ns.Run(() =>
            {
                using var first = XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb, UseNetlink = true });
                var error = Assert.Throws<BpfException>(() =>
                    XdpHook.Attach(env.Veth1Index, b.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb }));
                Assert.StartsWith($"a program is already attached to {KernelTestEnvironment.Veth1} by netlink (program {a.Id} 'count_a' in skb mode by netlink)", error.Message);

                using var replaced = XdpHook.Attach(env.Veth1Index, b.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb, Replace = true });
                Assert.Equal(XdpAttachMechanism.Netlink, replaced.AttachedBy);
                var now = Assert.Single(XdpHook.Query(env.Veth1Index).Programs);
                Assert.Equal((b.Id, XdpAttachMode.Skb), (now.ProgramId, now.Mode));

                // Detaching through the first attachment leaves the program that replaced it alone.
                var stale = Assert.Throws<BpfException>(first.Detach);
                Assert.Contains("no longer the one attached", stale.Message);
                replaced.Detach();
                Assert.Empty(XdpHook.Query(env.Veth1Index).Programs);
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void HardwareModeOnVeth_IsNotSupportedByTheDriver()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        {
            env.Ns.Run(() =>
            {
                foreach (var netlink in new[] { false, true })
                {
                    var error = Assert.Throws<BpfException>(() =>
                        XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Hardware, UseNetlink = netlink }));
                    Assert.StartsWith($"hardware offload (hw mode) is not supported by the veth driver of {KernelTestEnvironment.Veth1}", error.Message);
                }
                Assert.Empty(XdpHook.Query(env.Veth1Index).Programs);
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void UnknownInterface_IsNamed()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        {
            env.Ns.Run(() =>
            {
                var error = Assert.Throws<BpfException>(() => XdpHook.Attach("eth9", a.Program));
                Assert.Equal("no interface named 'eth9'", error.Message);
                Assert.Equal("no interface named 'eth9'", Assert.Throws<BpfException>(() => XdpHook.Detach("eth9")).Message);
                Assert.Equal("no interface named 'eth9'", Assert.Throws<BpfException>(() => XdpHook.Query("eth9")).Message);
            });
        }
        env.AssertNoFdLeaks();
    }

    [Fact]
    public void Query_OfAnotherNamespace_SeesItsPrograms()
    {
        using var env = KernelTestEnvironment.Create();
        using (var a = Loaded.Load("count_a"))
        {
            using var attachment = env.Ns.Run(() =>
                XdpHook.Attach(env.Veth1Index, a.Program, new XdpAttachOptions { Mode = XdpAttachMode.Skb }));
            var all = XdpHook.Query(netNsPath: env.Ns.Path);
            Assert.Equal(3, all.Count);
            var veth1 = Assert.Single(all, i => i.Name == KernelTestEnvironment.Veth1);
            var program = Assert.Single(veth1.Programs);
            Assert.Equal(a.Id, program.ProgramId);
            Assert.Equal(XdpAttachMechanism.Link, program.AttachedBy);
            Assert.All(all.Where(i => i.Name != KernelTestEnvironment.Veth1), i => Assert.Empty(i.Programs));
            env.Ns.Run(attachment.Dispose);
        }
        env.AssertNoFdLeaks();
    }

    /// <summary>True once <paramref name="condition"/> holds, polling for up to 5 s.</summary>
    internal static bool Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                return false;
            Thread.Sleep(5);
        }
        return true;
    }

    private static ulong WaitForSum(Loaded a, Loaded b, ulong expected)
    {
        // Frames in the veth's queue reach XDP in NAPI shortly after sendto returns.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (a.Count + b.Count < expected && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        return a.Count + b.Count;
    }
}
