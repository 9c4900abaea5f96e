using SharpBpf.Linux.Filter;
using SharpBpf.Linux.Links;

namespace SharpBpf.Hosting;

/// <summary>What <see cref="XdpFilterService"/> sets up when the application starts.</summary>
public sealed class XdpFilterOptions
{
    /// <summary>The bpffs directory of the filter's pinned maps and links.</summary>
    public string PinDirectory { get; set; } = XdpFilter.DefaultPinDirectory;

    /// <summary>Interfaces (names or indexes) to attach the filter to.</summary>
    public IList<string> Interfaces { get; } = [];

    /// <summary>How to attach: native (driver), skb (generic) or auto.</summary>
    public XdpAttachMode Mode { get; set; } = XdpAttachMode.Auto;

    /// <summary>The default policy to set at start; null keeps the pinned one.</summary>
    public FilterPolicy? Policy { get; set; }

    /// <summary>Rules to make sure of at start (rules already pinned are kept; a rule already there is not added twice).</summary>
    public IList<FilterRule> Rules { get; } = [];

    /// <summary>ADDRESS:PORT to serve Prometheus metrics on (GET any path), or null for none.</summary>
    public string? MetricsAddress { get; set; }

    /// <summary>Detach from the interfaces when the application stops (rules and counters stay pinned either way).</summary>
    public bool DetachOnStop { get; set; } = true;
}
