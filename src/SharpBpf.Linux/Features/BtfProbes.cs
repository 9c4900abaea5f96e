using System.Buffers.Binary;

namespace SharpBpf.Linux.Features;

/// <summary>
/// Tiny BTF blobs, each using one kind the oldest BTF-capable kernels lack: loading one tells whether the kernel
/// knows the kind. Layout of a blob:
/// <code>
///   header (24 bytes): magic 0xeB9F u16 | version 1 u8 | flags u8 | hdr_len u32 | type_off u32 | type_len u32 | str_off u32 | str_len u32
///   types:  btf_type { name_off u32 | info u32 = kind_flag:1 | kind:5 (bits 24-28) | vlen:16 | size_or_type u32 } + kind data
///   strings: "\0" first, NUL-separated
/// </code>
/// </summary>
internal static class BtfProbes
{
    public sealed record Probe(string Kind, string Since, byte[] Blob);

    // Strings at offsets: 0 "", 1 "a", 3 "tag", 7 ".data"
    private static readonly byte[] s_strings = "\0a\0tag\0.data\0"u8.ToArray();
    private const uint NameA = 1, NameTag = 3, NameData = 7;

    private const int KindInt = 1, KindPtr = 2, KindFunc = 12, KindFuncProto = 13, KindVar = 14, KindDatasec = 15,
        KindFloat = 16, KindDeclTag = 17, KindTypeTag = 18, KindEnum64 = 19;

    private static uint Info(int kind, int vlen = 0) => ((uint)kind << 24) | (uint)vlen;

    // int: 4 bytes, signed, 32 bits
    private static readonly uint[] s_int = [0, Info(KindInt), 4, (1u << 24) | 32];

    public static IReadOnlyList<Probe> All { get; } =
    [
        new("FUNC and FUNC_PROTO", "5.0", Blob([.. s_int, 0, Info(KindFuncProto), 1, NameA, Info(KindFunc), 2])),
        new("VAR and DATASEC", "5.2", Blob([.. s_int, NameA, Info(KindVar), 1, 1, NameData, Info(KindDatasec, 1), 4, 2, 0, 4])),
        new("FLOAT", "5.13", Blob([NameA, Info(KindFloat), 4])),
        new("DECL_TAG", "5.16", Blob([.. s_int, NameA, Info(KindVar), 1, 1, NameTag, Info(KindDeclTag), 2, uint.MaxValue])),
        new("TYPE_TAG", "5.17", Blob([.. s_int, NameTag, Info(KindTypeTag), 1, 0, Info(KindPtr), 2])),
        new("ENUM64", "6.0", Blob([NameA, Info(KindEnum64, 1), 8, NameA, 1, 0])),
    ];

    /// <summary>The simplest valid BTF (one int): if this fails the kernel has no BTF at all.</summary>
    public static byte[] Basic { get; } = Blob([.. s_int]);

    private static byte[] Blob(uint[] types)
    {
        int typeLen = types.Length * 4;
        var blob = new byte[24 + typeLen + s_strings.Length];
        var s = blob.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(s, 0xeB9F);
        s[2] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], 24);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[12..], (uint)typeLen);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], (uint)typeLen);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], (uint)s_strings.Length);
        for (int i = 0; i < types.Length; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(s[(24 + i * 4)..], types[i]);
        s_strings.CopyTo(s[(24 + typeLen)..]);
        return blob;
    }
}
