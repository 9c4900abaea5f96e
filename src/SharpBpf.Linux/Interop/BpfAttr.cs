using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Interop;

// The parts of `union bpf_attr` (linux/bpf.h) SharpBpf uses, one struct per command group. Each is passed to
// bpf(2) with its own size: the kernel zero-fills what it knows beyond it and rejects non-zero bytes it does not
// know, so mirroring only what we use keeps us compatible with older and newer kernels alike.
// Pointers are carried as u64 (__aligned_u64). Offsets are checked against the machine's headers by a test.

/// <summary>A NUL-terminated object name (char[BPF_OBJ_NAME_LEN]).</summary>
[InlineArray(BpfConstants.BPF_OBJ_NAME_LEN)]
internal struct ObjectName
{
    private byte _element0;

    public static ObjectName From(string? name)
    {
        var result = default(ObjectName);
        if (name is null)
            return result;
        Span<byte> span = result;
        int n = 0;
        foreach (char c in name)
        {
            if (n == span.Length - 1)
                break;
            // The kernel accepts only [A-Za-z0-9_.] in object names.
            if (char.IsAsciiLetterOrDigit(c) || c is '_' or '.')
                span[n++] = (byte)c;
        }
        return result;
    }

    public override readonly string ToString()
    {
        ReadOnlySpan<byte> span = this;
        int end = span.IndexOf((byte)0);
        return System.Text.Encoding.ASCII.GetString(end < 0 ? span : span[..end]);
    }
}

/// <summary>BPF_MAP_CREATE.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 72)]
internal struct MapCreateAttr
{
    [FieldOffset(0), CField("map_type")] public uint MapType;
    [FieldOffset(4), CField("key_size")] public uint KeySize;
    [FieldOffset(8), CField("value_size")] public uint ValueSize;
    [FieldOffset(12), CField("max_entries")] public uint MaxEntries;
    [FieldOffset(16), CField("map_flags")] public uint MapFlags;
    [FieldOffset(20), CField("inner_map_fd")] public uint InnerMapFd;
    [FieldOffset(24), CField("numa_node")] public uint NumaNode;
    [FieldOffset(28), CField("map_name")] public ObjectName MapName;
    [FieldOffset(44), CField("map_ifindex")] public uint MapIfIndex;
    [FieldOffset(48), CField("btf_fd")] public uint BtfFd;
    [FieldOffset(52), CField("btf_key_type_id")] public uint BtfKeyTypeId;
    [FieldOffset(56), CField("btf_value_type_id")] public uint BtfValueTypeId;
    [FieldOffset(60), CField("btf_vmlinux_value_type_id")] public uint BtfVmlinuxValueTypeId;
    [FieldOffset(64), CField("map_extra")] public ulong MapExtra;
}

/// <summary>BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY, BPF_MAP_FREEZE.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct MapElemAttr
{
    [FieldOffset(0), CField("map_fd")] public uint MapFd;
    [FieldOffset(8), CField("key")] public ulong Key;
    /// <summary>value, or next_key for BPF_MAP_GET_NEXT_KEY (the same union member).</summary>
    [FieldOffset(16), CField("value")] public ulong Value;
    [FieldOffset(24), CField("flags")] public ulong Flags;
}

/// <summary>BPF_MAP_*_BATCH.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 56)]
internal struct MapBatchAttr
{
    [FieldOffset(0), CField("batch.in_batch")] public ulong InBatch;
    [FieldOffset(8), CField("batch.out_batch")] public ulong OutBatch;
    [FieldOffset(16), CField("batch.keys")] public ulong Keys;
    [FieldOffset(24), CField("batch.values")] public ulong Values;
    [FieldOffset(32), CField("batch.count")] public uint Count;
    [FieldOffset(36), CField("batch.map_fd")] public uint MapFd;
    [FieldOffset(40), CField("batch.elem_flags")] public ulong ElemFlags;
    [FieldOffset(48), CField("batch.flags")] public ulong Flags;
}

/// <summary>BPF_PROG_LOAD.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct ProgLoadAttr
{
    [FieldOffset(0), CField("prog_type")] public uint ProgType;
    [FieldOffset(4), CField("insn_cnt")] public uint InsnCnt;
    [FieldOffset(8), CField("insns")] public ulong Insns;
    [FieldOffset(16), CField("license")] public ulong License;
    [FieldOffset(24), CField("log_level")] public uint LogLevel;
    [FieldOffset(28), CField("log_size")] public uint LogSize;
    [FieldOffset(32), CField("log_buf")] public ulong LogBuf;
    [FieldOffset(40), CField("kern_version")] public uint KernVersion;
    [FieldOffset(44), CField("prog_flags")] public uint ProgFlags;
    [FieldOffset(48), CField("prog_name")] public ObjectName ProgName;
    [FieldOffset(64), CField("prog_ifindex")] public uint ProgIfIndex;
    [FieldOffset(68), CField("expected_attach_type")] public uint ExpectedAttachType;
    [FieldOffset(72), CField("prog_btf_fd")] public uint ProgBtfFd;
    [FieldOffset(76), CField("func_info_rec_size")] public uint FuncInfoRecSize;
    [FieldOffset(80), CField("func_info")] public ulong FuncInfo;
    [FieldOffset(88), CField("func_info_cnt")] public uint FuncInfoCnt;
    [FieldOffset(92), CField("line_info_rec_size")] public uint LineInfoRecSize;
    [FieldOffset(96), CField("line_info")] public ulong LineInfo;
    [FieldOffset(104), CField("line_info_cnt")] public uint LineInfoCnt;
    [FieldOffset(108), CField("attach_btf_id")] public uint AttachBtfId;
    [FieldOffset(112), CField("attach_prog_fd")] public uint AttachProgFd;
    [FieldOffset(116), CField("core_relo_cnt")] public uint CoreReloCnt;
    [FieldOffset(120), CField("fd_array")] public ulong FdArray;
}

/// <summary>BPF_OBJ_PIN, BPF_OBJ_GET.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct ObjAttr
{
    [FieldOffset(0), CField("pathname")] public ulong PathName;
    [FieldOffset(8), CField("bpf_fd")] public uint BpfFd;
    [FieldOffset(12), CField("file_flags")] public uint FileFlags;
}

/// <summary>BPF_PROG_TEST_RUN.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 80)]
internal struct ProgTestRunAttr
{
    [FieldOffset(0), CField("test.prog_fd")] public uint ProgFd;
    [FieldOffset(4), CField("test.retval")] public uint Retval;
    [FieldOffset(8), CField("test.data_size_in")] public uint DataSizeIn;
    [FieldOffset(12), CField("test.data_size_out")] public uint DataSizeOut;
    [FieldOffset(16), CField("test.data_in")] public ulong DataIn;
    [FieldOffset(24), CField("test.data_out")] public ulong DataOut;
    [FieldOffset(32), CField("test.repeat")] public uint Repeat;
    [FieldOffset(36), CField("test.duration")] public uint Duration;
    [FieldOffset(40), CField("test.ctx_size_in")] public uint CtxSizeIn;
    [FieldOffset(44), CField("test.ctx_size_out")] public uint CtxSizeOut;
    [FieldOffset(48), CField("test.ctx_in")] public ulong CtxIn;
    [FieldOffset(56), CField("test.ctx_out")] public ulong CtxOut;
    [FieldOffset(64), CField("test.flags")] public uint Flags;
    [FieldOffset(68), CField("test.cpu")] public uint Cpu;
    [FieldOffset(72), CField("test.batch_size")] public uint BatchSize;
}

/// <summary>BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID (start_id, prog_id, map_id, btf_id, link_id share offset 0).</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 12)]
internal struct GetIdAttr
{
    [FieldOffset(0), CField("start_id")] public uint Id;
    [FieldOffset(4), CField("next_id")] public uint NextId;
    [FieldOffset(8), CField("open_flags")] public uint OpenFlags;
}

/// <summary>BPF_OBJ_GET_INFO_BY_FD.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct InfoByFdAttr
{
    [FieldOffset(0), CField("info.bpf_fd")] public uint BpfFd;
    [FieldOffset(4), CField("info.info_len")] public uint InfoLen;
    [FieldOffset(8), CField("info.info")] public ulong Info;
}

/// <summary>BPF_BTF_LOAD.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct BtfLoadAttr
{
    [FieldOffset(0), CField("btf")] public ulong Btf;
    [FieldOffset(8), CField("btf_log_buf")] public ulong BtfLogBuf;
    [FieldOffset(16), CField("btf_size")] public uint BtfSize;
    [FieldOffset(20), CField("btf_log_size")] public uint BtfLogSize;
    [FieldOffset(24), CField("btf_log_level")] public uint BtfLogLevel;
}

/// <summary>
/// BPF_LINK_CREATE. The part after <c>flags</c> is a union whose meaning depends on the attach type; for XDP it
/// is unused (zero). <see cref="TargetBtfId"/> is its first word; the rest of the struct is that union's space,
/// kept zero, so its size is not checked against the members.
/// </summary>
[CType("union bpf_attr", CheckSize = false), StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct LinkCreateAttr
{
    /// <summary>prog_fd (or map_fd for struct_ops links).</summary>
    [FieldOffset(0), CField("link_create.prog_fd")] public uint ProgFd;
    /// <summary>target_fd, or target_ifindex for XDP.</summary>
    [FieldOffset(4), CField("link_create.target_ifindex")] public uint TargetIfIndex;
    [FieldOffset(8), CField("link_create.attach_type")] public uint AttachType;
    [FieldOffset(12), CField("link_create.flags")] public uint Flags;
    [FieldOffset(16), CField("link_create.target_btf_id")] public uint TargetBtfId;
}

/// <summary>BPF_LINK_UPDATE.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct LinkUpdateAttr
{
    [FieldOffset(0), CField("link_update.link_fd")] public uint LinkFd;
    [FieldOffset(4), CField("link_update.new_prog_fd")] public uint NewProgFd;
    [FieldOffset(8), CField("link_update.flags")] public uint Flags;
    [FieldOffset(12), CField("link_update.old_prog_fd")] public uint OldProgFd;
}

/// <summary>BPF_LINK_DETACH.</summary>
[CType("union bpf_attr"), StructLayout(LayoutKind.Explicit, Size = 4)]
internal struct LinkDetachAttr
{
    [FieldOffset(0), CField("link_detach.link_fd")] public uint LinkFd;
}
