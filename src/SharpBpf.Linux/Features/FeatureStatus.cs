namespace SharpBpf.Linux.Features;

/// <summary>One probed kernel feature.</summary>
/// <param name="Category">"program type", "map type", "helper", "link", "btf kind" or "syscall".</param>
/// <param name="Name">The feature, e.g. "Xdp", "bpf_redirect_map for Xdp", "bpf_link for XDP".</param>
/// <param name="Supported">True or false as probed; null when this kernel cannot be asked without more context.</param>
/// <param name="SinceKernel">The first Linux version that has it, when known.</param>
/// <param name="Detail">Why a probe was inconclusive or failed, when it says something useful.</param>
public sealed record FeatureStatus(string Category, string Name, bool? Supported, string? SinceKernel, string? Detail = null);
