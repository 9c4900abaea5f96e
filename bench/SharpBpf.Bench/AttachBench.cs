using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using SharpBpf.Asm;
using SharpBpf.Linux;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Netlink;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Bench;

/// <summary>
/// XDP attach + detach on a veth, through <see cref="XdpHook"/> by netlink and by bpf_link, against the bare
/// kernel cost measured in the same run: one RTM_SETLINK attach and one detach on an open netlink socket (the
/// baseline). Attach and detach wait for RCU grace periods (about 8-16 ms each on a HZ=250 kernel), so the ratios
/// show what the library adds on top: interface lookup, status query, error context. The netlink status query
/// alone is listed for scale. Runs in a private network namespace that ends with the process; needs root.
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 12)]
public partial class AttachBench
{
    private BpfProgram? _program;
    private RtNetlinkClient? _client;
    private int _ifIndex;

    [GlobalSetup]
    public void Setup()
    {
        if (!Environment.IsPrivilegedProcess)
            throw new InvalidOperationException("AttachBench needs root (network namespace, veth, BPF)");
        // A namespace for this (the benchmark's) thread only, with no name: it goes away with the process.
        if (Unshare(0x40000000) != 0) // CLONE_NEWNET
            throw new InvalidOperationException("unshare(CLONE_NEWNET): errno " + Marshal.GetLastPInvokeError());
        _client = RtNetlinkClient.Open();
        _client.CreateVethPair("bench0", "bench1");
        _ifIndex = _client.GetLink("bench1")!.Index;
        _client.SetUp(_client.GetLink("bench0")!.Index, true);
        _client.SetUp(_ifIndex, true);
        _program = BpfProgram.Load(new ProgramSpec
        {
            Name = "xdp_pass",
            SectionName = "xdp",
            Type = ProgramType.Xdp,
            License = "GPL",
            Instructions =
            [
                new(new OpCode(0xb7), Register.R0, Register.R0, 0, 2), // r0 = XDP_PASS
                new(new OpCode(0x95), Register.R0, Register.R0, 0, 0), // exit
            ],
        });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _program?.Dispose();
        _client?.Dispose();
    }

    [Benchmark(Baseline = true, Description = "bare RTM_SETLINK attach + detach")]
    public void BareNetlink()
    {
        using var lease = _program!.Fd.Use();
        _client!.SetXdp(_ifIndex, (int)lease.Fd, XdpFlags.DriverMode);
        _client.SetXdp(_ifIndex, -1, XdpFlags.DriverMode);
    }

    [Benchmark(Description = "XdpHook attach + detach, netlink")]
    public void HookNetlink()
    {
        using var attachment = XdpHook.Attach(_ifIndex, _program!, new XdpAttachOptions { Mode = XdpAttachMode.Native, UseNetlink = true });
        attachment.Detach();
    }

    [Benchmark(Description = "XdpHook attach + detach, bpf_link")]
    public void HookLink()
    {
        using var attachment = XdpHook.Attach(_ifIndex, _program!, new XdpAttachOptions { Mode = XdpAttachMode.Native });
        attachment.Detach();
    }

    [Benchmark(Description = "XdpHook.Query (netlink + prog info)")]
    public int Query() => XdpHook.Query(_ifIndex).Programs.Count;

    [LibraryImport("libc", EntryPoint = "unshare", SetLastError = true)]
    private static partial int Unshare(int flags);
}
