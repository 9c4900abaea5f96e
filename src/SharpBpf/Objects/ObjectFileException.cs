namespace SharpBpf.Objects;

/// <summary>
/// A malformed, hostile or unsupported object file. The message names where the problem is: the section, symbol
/// and byte offset when they are known (also available as properties).
/// </summary>
public class ObjectFileException : BpfException
{
    public ObjectFileException(string message, string? section = null, string? symbol = null, long? offset = null, Exception? innerException = null)
        : base(Format(message, section, symbol, offset), innerException)
    {
        Section = section;
        Symbol = symbol;
        Offset = offset;
    }

    /// <summary>The section the problem is in, when known.</summary>
    public string? Section { get; }

    /// <summary>The symbol (program, map or variable) concerned, when known.</summary>
    public string? Symbol { get; }

    /// <summary>The byte offset (in the file, or in <see cref="Section"/> when one is named), when known.</summary>
    public long? Offset { get; }

    private static string Format(string message, string? section, string? symbol, long? offset)
    {
        var where = new List<string>(3);
        if (section is not null)
            where.Add($"section '{section}'");
        if (symbol is not null)
            where.Add($"symbol '{symbol}'");
        if (offset is not null)
            where.Add($"offset 0x{offset.Value:x}");
        return where.Count == 0 ? message : $"{string.Join(", ", where)}: {message}";
    }
}
