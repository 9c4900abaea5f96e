using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Interop;

// Info structs filled by BPF_OBJ_GET_INFO_BY_FD. We pass our size as info_len: the kernel fills what it has up to
// that length and tells back how much it wrote, so older and newer kernels both work.

/// <summary>u8 tag[BPF_TAG_SIZE].</summary>
[InlineArray(BpfConstants.BPF_TAG_SIZE)]
internal struct ProgramTagBytes
{
    private byte _element0;
}

/// <summary>struct bpf_prog_info (up to attach_btf_id).</summary>
[CType("struct bpf_prog_info"), StructLayout(LayoutKind.Explicit, Size = 232)]
internal struct BpfProgInfo
{
    [FieldOffset(0), CField("type")] public uint Type;
    [FieldOffset(4), CField("id")] public uint Id;
    [FieldOffset(8), CField("tag")] public ProgramTagBytes Tag;
    [FieldOffset(16), CField("jited_prog_len")] public uint JitedProgLen;
    [FieldOffset(20), CField("xlated_prog_len")] public uint XlatedProgLen;
    [FieldOffset(24), CField("jited_prog_insns")] public ulong JitedProgInsns;
    [FieldOffset(32), CField("xlated_prog_insns")] public ulong XlatedProgInsns;
    [FieldOffset(40), CField("load_time")] public ulong LoadTime;
    [FieldOffset(48), CField("created_by_uid")] public uint CreatedByUid;
    [FieldOffset(52), CField("nr_map_ids")] public uint NrMapIds;
    [FieldOffset(56), CField("map_ids")] public ulong MapIds;
    [FieldOffset(64), CField("name")] public ObjectName Name;
    [FieldOffset(80), CField("ifindex")] public uint IfIndex;
    /// <summary>Bit 0: gpl_compatible (a bit-field, so it has no offsetof; checked by position of the next field).</summary>
    [FieldOffset(84)] public uint GplCompatibleBits;
    [FieldOffset(88), CField("netns_dev")] public ulong NetnsDev;
    [FieldOffset(96), CField("netns_ino")] public ulong NetnsIno;
    [FieldOffset(104), CField("nr_jited_ksyms")] public uint NrJitedKsyms;
    [FieldOffset(108), CField("nr_jited_func_lens")] public uint NrJitedFuncLens;
    [FieldOffset(112), CField("jited_ksyms")] public ulong JitedKsyms;
    [FieldOffset(120), CField("jited_func_lens")] public ulong JitedFuncLens;
    [FieldOffset(128), CField("btf_id")] public uint BtfId;
    [FieldOffset(132), CField("func_info_rec_size")] public uint FuncInfoRecSize;
    [FieldOffset(136), CField("func_info")] public ulong FuncInfo;
    [FieldOffset(144), CField("nr_func_info")] public uint NrFuncInfo;
    [FieldOffset(148), CField("nr_line_info")] public uint NrLineInfo;
    [FieldOffset(152), CField("line_info")] public ulong LineInfo;
    [FieldOffset(160), CField("jited_line_info")] public ulong JitedLineInfo;
    [FieldOffset(168), CField("nr_jited_line_info")] public uint NrJitedLineInfo;
    [FieldOffset(172), CField("line_info_rec_size")] public uint LineInfoRecSize;
    [FieldOffset(176), CField("jited_line_info_rec_size")] public uint JitedLineInfoRecSize;
    [FieldOffset(180), CField("nr_prog_tags")] public uint NrProgTags;
    [FieldOffset(184), CField("prog_tags")] public ulong ProgTags;
    [FieldOffset(192), CField("run_time_ns")] public ulong RunTimeNs;
    [FieldOffset(200), CField("run_cnt")] public ulong RunCnt;
    [FieldOffset(208), CField("recursion_misses")] public ulong RecursionMisses;
    [FieldOffset(216), CField("verified_insns")] public uint VerifiedInsns;
    [FieldOffset(220), CField("attach_btf_obj_id")] public uint AttachBtfObjId;
    [FieldOffset(224), CField("attach_btf_id")] public uint AttachBtfId;
}

/// <summary>struct bpf_map_info (up to map_extra).</summary>
[CType("struct bpf_map_info"), StructLayout(LayoutKind.Explicit, Size = 88)]
internal struct BpfMapInfo
{
    [FieldOffset(0), CField("type")] public uint Type;
    [FieldOffset(4), CField("id")] public uint Id;
    [FieldOffset(8), CField("key_size")] public uint KeySize;
    [FieldOffset(12), CField("value_size")] public uint ValueSize;
    [FieldOffset(16), CField("max_entries")] public uint MaxEntries;
    [FieldOffset(20), CField("map_flags")] public uint MapFlags;
    [FieldOffset(24), CField("name")] public ObjectName Name;
    [FieldOffset(40), CField("ifindex")] public uint IfIndex;
    [FieldOffset(44), CField("btf_vmlinux_value_type_id")] public uint BtfVmlinuxValueTypeId;
    [FieldOffset(48), CField("netns_dev")] public ulong NetnsDev;
    [FieldOffset(56), CField("netns_ino")] public ulong NetnsIno;
    [FieldOffset(64), CField("btf_id")] public uint BtfId;
    [FieldOffset(68), CField("btf_key_type_id")] public uint BtfKeyTypeId;
    [FieldOffset(72), CField("btf_value_type_id")] public uint BtfValueTypeId;
    [FieldOffset(80), CField("map_extra")] public ulong MapExtra;
}

/// <summary>struct bpf_btf_info.</summary>
[CType("struct bpf_btf_info"), StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct BpfBtfInfo
{
    [FieldOffset(0), CField("btf")] public ulong Btf;
    [FieldOffset(8), CField("btf_size")] public uint BtfSize;
    [FieldOffset(12), CField("id")] public uint Id;
    [FieldOffset(16), CField("name")] public ulong Name;
    [FieldOffset(24), CField("name_len")] public uint NameLen;
    [FieldOffset(28), CField("kernel_btf")] public uint KernelBtf;
}

/// <summary>
/// struct bpf_link_info: the common head and the XDP member of its union. The union is larger for other link
/// types; the struct size (64) covers what this kernel generation uses so the kernel can fill any member.
/// </summary>
[CType("struct bpf_link_info", CheckSize = false), StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct BpfLinkInfo
{
    [FieldOffset(0), CField("type")] public uint Type;
    [FieldOffset(4), CField("id")] public uint Id;
    [FieldOffset(8), CField("prog_id")] public uint ProgId;
    [FieldOffset(16), CField("xdp.ifindex")] public uint XdpIfIndex;
}
