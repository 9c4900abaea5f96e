using SharpBpf.Objects;

namespace SharpBpf.Linux.Filter;

/// <summary>The filter's object file (programs/xdp_filter.o, as programs/build.sh builds it), embedded in this assembly.</summary>
public static class FilterProgram
{
    /// <summary>The object's bytes.</summary>
    public static byte[] ObjectBytes()
    {
        using var stream = typeof(FilterProgram).Assembly.GetManifestResourceStream("SharpBpf.Linux.Filter.xdp_filter.o")
            ?? throw new System.Diagnostics.UnreachableException("xdp_filter.o is not embedded in " + typeof(FilterProgram).Assembly.GetName().Name);
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>The filter as a spec, ready for the Linux backend or the managed VM.</summary>
    public static CollectionSpec LoadSpec() => ObjectFile.Read(ObjectBytes(), "xdp_filter");
}
