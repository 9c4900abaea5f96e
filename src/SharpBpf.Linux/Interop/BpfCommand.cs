namespace SharpBpf.Linux.Interop;

/// <summary>The bpf(2) commands SharpBpf issues, numbered as enum bpf_cmd in linux/bpf.h.</summary>
internal enum BpfCommand
{
    BPF_MAP_CREATE = 0,
    BPF_MAP_LOOKUP_ELEM = 1,
    BPF_MAP_UPDATE_ELEM = 2,
    BPF_MAP_DELETE_ELEM = 3,
    BPF_MAP_GET_NEXT_KEY = 4,
    BPF_PROG_LOAD = 5,
    BPF_OBJ_PIN = 6,
    BPF_OBJ_GET = 7,
    BPF_PROG_ATTACH = 8,
    BPF_PROG_DETACH = 9,
    BPF_PROG_TEST_RUN = 10,
    BPF_PROG_GET_NEXT_ID = 11,
    BPF_MAP_GET_NEXT_ID = 12,
    BPF_PROG_GET_FD_BY_ID = 13,
    BPF_MAP_GET_FD_BY_ID = 14,
    BPF_OBJ_GET_INFO_BY_FD = 15,
    BPF_PROG_QUERY = 16,
    BPF_RAW_TRACEPOINT_OPEN = 17,
    BPF_BTF_LOAD = 18,
    BPF_BTF_GET_FD_BY_ID = 19,
    BPF_TASK_FD_QUERY = 20,
    BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21,
    BPF_MAP_FREEZE = 22,
    BPF_BTF_GET_NEXT_ID = 23,
    BPF_MAP_LOOKUP_BATCH = 24,
    BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25,
    BPF_MAP_UPDATE_BATCH = 26,
    BPF_MAP_DELETE_BATCH = 27,
    BPF_LINK_CREATE = 28,
    BPF_LINK_UPDATE = 29,
    BPF_LINK_GET_FD_BY_ID = 30,
    BPF_LINK_GET_NEXT_ID = 31,
    BPF_ENABLE_STATS = 32,
    BPF_ITER_CREATE = 33,
    BPF_LINK_DETACH = 34,
    BPF_PROG_BIND_MAP = 35,
}

/// <summary>Flags and constants of linux/bpf.h used by the loader (kernel spellings stay in Interop/).</summary>
internal static class BpfConstants
{
    // map_flags
    public const uint BPF_F_NO_PREALLOC = 1u << 0;
    public const uint BPF_F_RDONLY = 1u << 3;
    public const uint BPF_F_WRONLY = 1u << 4;
    public const uint BPF_F_RDONLY_PROG = 1u << 7;
    public const uint BPF_F_WRONLY_PROG = 1u << 8;
    public const uint BPF_F_MMAPABLE = 1u << 10;

    // update flags
    public const ulong BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2, BPF_F_LOCK = 4;

    // prog_flags
    public const uint BPF_F_STRICT_ALIGNMENT = 1u << 0;
    public const uint BPF_F_XDP_HAS_FRAGS = 1u << 5;

    // attach types used for XDP
    public const uint BPF_XDP = 37;

    /// <summary>Object names (maps, programs) hold at most 15 characters and a NUL.</summary>
    public const int BPF_OBJ_NAME_LEN = 16;

    public const int BPF_TAG_SIZE = 8;
}
