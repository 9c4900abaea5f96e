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
            // One open, one fstat, one read: the file is small and read whole.
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            long length = RandomAccess.GetLength(handle);
            if (length > MaxFileSize)
                throw new ObjectFileException($"'{path}' is {length} bytes, more than the {MaxFileSize}-byte limit for an object file");
            if (length == 0)
            {
                // A pipe or a /proc file reports no length: read to the end.
                bytes = File.ReadAllBytes(path);
                if (bytes.LongLength > MaxFileSize)
                    throw new ObjectFileException($"'{path}' is more than the {MaxFileSize}-byte limit for an object file");
            }
            else
            {
                bytes = new byte[length];
                int total = 0;
                while (total < bytes.Length)
                {
                    int n = RandomAccess.Read(handle, bytes.AsSpan(total), total);
                    if (n == 0)
                        break;
                    total += n;
                }
                if (total != bytes.Length)
                    throw new ObjectFileException($"cannot read '{path}': it shrank from {length} to {total} bytes while being read");
            }
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException
            || e is UnauthorizedAccessException && Directory.Exists(path))
        {
            throw new ObjectFileException($"cannot read '{path}': no such file", innerException: e);
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
