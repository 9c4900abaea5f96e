namespace SharpBpf.Objects;

/// <summary>
/// Reads a clang-built BPF ELF object into a <see cref="CollectionSpec"/>: programs (linked with the subprograms
/// they call), maps (BTF-defined, legacy and global data), license, version, BTF and per-program BTF.ext records.
/// Reading has no side effects: nothing touches the kernel. Any problem with the file is an
/// <see cref="ObjectFileException"/> that names the section, symbol and offset.
/// </summary>
public static class ObjectFile
{
    /// <summary>Files larger than this are refused before they are read (BPF objects are small).</summary>
    public const long MaxFileSize = 256L * 1024 * 1024;

    /// <summary>Reads an object file from disk. The object name (for global-data map names) is the file name up to its first '.'.</summary>
    public static CollectionSpec Open(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
                throw new ObjectFileException($"cannot read '{path}': no such file");
            if (info.Length > MaxFileSize)
                throw new ObjectFileException($"'{path}' is {info.Length} bytes, more than the {MaxFileSize}-byte limit for an object file");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ObjectFileException($"cannot read '{path}': {e.Message}", innerException: e);
        }
        return Read(bytes, ObjectNameFromPath(path));
    }

    /// <summary>Reads an object file from memory.</summary>
    /// <param name="data">The whole ELF file.</param>
    /// <param name="objectName">The object's name, used as libbpf does to name global-data maps in the kernel.</param>
    public static CollectionSpec Read(ReadOnlyMemory<byte> data, string objectName = "") =>
        new ObjectReader(data, objectName).Read();

    /// <summary>libbpf's object name: the file name without directories, cut at its first '.'.</summary>
    public static string ObjectNameFromPath(string path)
    {
        var name = Path.GetFileName(path);
        int dot = name.IndexOf('.', StringComparison.Ordinal);
        return dot >= 0 ? name[..dot] : name;
    }
}
