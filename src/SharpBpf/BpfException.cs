namespace SharpBpf;

/// <summary>
/// Base of every error caused by bad input: a malformed object file, an invalid instruction, a verifier
/// rejection, a refusal by the kernel. Messages say what and where (section, program, instruction, source line).
/// </summary>
public class BpfException : Exception
{
    public BpfException(string message) : base(message) { }
    public BpfException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>
/// A feature the running kernel (or this platform) lacks. Names the feature and, where known, the kernel
/// version that brings it.
/// </summary>
public class BpfNotSupportedException : BpfException
{
    public BpfNotSupportedException(string feature, string? sinceKernel = null, string? detail = null)
        : base(Format(feature, sinceKernel, detail))
    {
        Feature = feature;
        SinceKernel = sinceKernel;
    }

    /// <summary>The missing feature, e.g. "bpf_link for XDP".</summary>
    public string Feature { get; }

    /// <summary>The first kernel version that has the feature, e.g. "5.9", when known.</summary>
    public string? SinceKernel { get; }

    private static string Format(string feature, string? sinceKernel, string? detail)
    {
        var text = $"{feature} is not supported here";
        if (sinceKernel is not null)
            text += $" (it needs Linux {sinceKernel} or later)";
        if (detail is not null)
            text += $": {detail}";
        return text;
    }
}
