namespace SharpBpf.Linux;

/// <summary>How <see cref="BpfCollection.Load(SharpBpf.Objects.CollectionSpec, BpfCollectionOptions?)"/> loads an object.</summary>
public sealed record BpfCollectionOptions
{
    /// <summary>Where maps marked LIBBPF_PIN_BY_NAME are pinned and looked for (libbpf's default is /sys/fs/bpf).</summary>
    public string PinDirectory { get; init; } = "/sys/fs/bpf";

    /// <summary>
    /// Verifier log level for every load (0: none, 1: the path that failed, 2: everything). With 0 the log is
    /// still captured, at level 1, when a load fails.
    /// </summary>
    public int VerifierLogLevel { get; init; }

    /// <summary>First size of the verifier log buffer; it grows while the kernel reports it too small.</summary>
    public int VerifierLogSize { get; init; } = 64 * 1024;

    /// <summary>Names of the programs to load, or null for all of them. Maps are created only if some loaded program uses them.</summary>
    public IReadOnlyCollection<string>? Programs { get; init; }

    /// <summary>
    /// prog_ifindex: the network device the programs are loaded for, or null. With BPF_F_XDP_DEV_BOUND_ONLY in
    /// <see cref="SharpBpf.Objects.ProgramSpec.Flags"/> an XDP program is bound to that device: it may call the XDP
    /// metadata kfuncs (bpf_xdp_metadata_rx_timestamp, ...) and attach only there.
    /// </summary>
    public int? DeviceIfIndex { get; init; }
}
