using SharpBpf.Objects;

namespace SharpBpf.Maps;

/// <summary>Spec validation shared by the map types: refusals say which map, which field and why, with the errno
/// BPF_MAP_CREATE would give.</summary>
internal static class SpecCheck
{
    /// <summary>KMALLOC_MAX_SIZE on x86-64 (order-10 pages): the kernel's bound on one allocation.</summary>
    public const long KmallocMax = 4L << 20;

    /// <summary>PCPU_MIN_UNIT_SIZE: the bound on one per-CPU value.</summary>
    public const int PerCpuValueMax = 32 << 10;

    /// <summary>Bytes the kernel's hash element header takes from the one-allocation bound (an approximation of
    /// sizeof(struct htab_elem); it only matters for keys and values of about 4 MiB).</summary>
    public const int HashElementHeader = 48;

    /// <summary>Our own bound on what one managed map may preallocate, so a hostile spec cannot exhaust memory.</summary>
    public const long MaxPreallocBytes = 1L << 31;

    public static MapException Refuse(MapSpec spec, int errno, string why) =>
        new(spec.Name, "create", errno, $"{spec.Type}: {why}");

    public static void Require(MapSpec spec, bool condition, int errno, string why)
    {
        if (!condition)
            throw Refuse(spec, errno, why);
    }

    public static void Flags(MapSpec spec, uint allowed)
    {
        var extra = spec.Flags & ~allowed;
        Require(spec, extra == 0, Errno.EINVAL, $"flags 0x{extra:x} are not valid for this map type");
        Require(spec, MapFlagMasks.AccessOk(spec.Flags), Errno.EINVAL,
            "flags ask for both read-only and write-only access on the same side");
    }

    public static void KeySize(MapSpec spec, uint expected) =>
        Require(spec, spec.KeySize == expected, Errno.EINVAL, $"key size must be {expected}, got {spec.KeySize}");

    public static void MaxEntriesNonZero(MapSpec spec) =>
        Require(spec, spec.MaxEntries > 0, Errno.EINVAL, "max entries must be greater than 0");

    public static void ValueSizeNonZero(MapSpec spec) =>
        Require(spec, spec.ValueSize > 0, Errno.EINVAL, "value size must be greater than 0");

    public static void NoInitialValue(MapSpec spec) =>
        Require(spec, spec.InitialValue is null, Errno.EINVAL, "only array maps can carry an initial value");
}
