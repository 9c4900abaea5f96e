using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Maps;

internal static unsafe class M
{
    public static ManagedMap Create(MapType type, uint key, uint value, uint max, uint flags = 0, string name = "m") =>
        MapFactory.Create(new MapSpec { Name = name, Type = type, KeySize = key, ValueSize = value, MaxEntries = max, Flags = flags });

    public static byte[] U32(uint v) => BitConverter.GetBytes(v);
    public static byte[] U64(ulong v) => BitConverter.GetBytes(v);

    public static int ProgUpdate(ManagedMap map, byte[] key, byte[] value, ulong flags = 0, int cpu = 0)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
            return map.UpdateFromProgram(k, v, flags, cpu);
    }

    public static int ProgDelete(ManagedMap map, byte[] key)
    {
        fixed (byte* k = key)
            return map.DeleteFromProgram(k);
    }

    public static byte* ProgLookup(ManagedMap map, byte[] key, int cpu = 0)
    {
        fixed (byte* k = key)
            return map.LookupForProgram(k, cpu);
    }

    public static ulong? ProgLookupU64(ManagedMap map, byte[] key, int cpu = 0)
    {
        var p = ProgLookup(map, key, cpu);
        return p == null ? null : *(ulong*)p;
    }

    public static int ThrowsErrno(Action action)
    {
        var e = Assert.ThrowsAny<MapException>(action);
        return e.ErrorNumber;
    }
}
