namespace SharpBpf.Xdp;

/// <summary>What an XDP program decides for a frame (enum xdp_action).</summary>
public enum XdpAction : uint
{
    /// <summary>An error: the frame is dropped and the drop is traced. A VM trap becomes this action.</summary>
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    /// <summary>Send the (possibly rewritten) frame back out of the interface it came in on.</summary>
    Tx = 3,
    /// <summary>Send the frame to the target a redirect helper chose: another port, a CPU or an AF_XDP socket.</summary>
    Redirect = 4,
}
