using System.Runtime.InteropServices;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>What a redirect through a map points at.</summary>
public enum RedirectTargetKind
{
    /// <summary>Another network device (devmap, devmap_hash): <see cref="RedirectTarget.IfIndex"/>.</summary>
    Device,
    /// <summary>Another CPU's network stack (cpumap): <see cref="RedirectTarget.Cpu"/>.</summary>
    Cpu,
    /// <summary>An AF_XDP socket (xskmap) bound to queue <see cref="RedirectTarget.QueueId"/>.</summary>
    Socket,
}

/// <summary>
/// The target of bpf_redirect_map, for the XDP runtime to route the frame: the kind, and the device ifindex, CPU
/// or socket queue. <see cref="QueueSize"/> is the cpumap entry's queue size; <see cref="ProgramId"/> the program
/// a devmap/cpumap entry attaches (0 for none); <see cref="SocketId"/> the value stored in an xskmap slot.
/// </summary>
public readonly record struct RedirectTarget(
    RedirectTargetKind Kind, uint IfIndex = 0, uint Cpu = 0, uint QueueId = 0, uint QueueSize = 0,
    uint ProgramId = 0, uint SocketId = 0);

/// <summary>A map that bpf_redirect_map can redirect through.</summary>
public interface IRedirectMap
{
    /// <summary>The target stored at <paramref name="key"/>; false for an empty slot or absent key.</summary>
    bool TryGetTarget(uint key, out RedirectTarget target);
}

/// <summary>
/// Array-shaped redirect maps (devmap, cpumap, xskmap): MaxEntries slots of ValueSize bytes in unmanaged memory
/// (so program lookups can return pointers), each present or empty. Deleting is allowed at any index below
/// MaxEntries (EINVAL past it) and is not an error on an empty slot, as in the kernel.
/// </summary>
public abstract unsafe class RedirectArrayMap : ManagedMap, IRedirectMap
{
    private readonly byte* _slots;
    private readonly int[] _present;
    private protected readonly Lock Sync = new();

    private protected RedirectArrayMap(MapSpec spec) : base(spec)
    {
        _slots = (byte*)NativeMemory.AllocZeroed((nuint)MaxEntries, 8);
        _present = new int[MaxEntries];
    }

    private protected static void ValidateArrayShape(MapSpec spec, uint maxEntriesLimit)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.KeySize(spec, 4);
        SpecCheck.Require(spec, spec.MaxEntries <= maxEntriesLimit, Errno.E2BIG,
            $"max entries {spec.MaxEntries} is over {maxEntriesLimit}");
    }

    private protected byte* Slot(uint index) => _slots + (long)index * 8;

    private protected bool IsPresent(uint index) => index < (uint)MaxEntries && Volatile.Read(ref _present[index]) != 0;

    private protected void Store(uint index, ReadOnlySpan<byte> value)
    {
        NativeMemory.Clear(Slot(index), 8);
        value.CopyTo(new Span<byte>(Slot(index), value.Length));
        Volatile.Write(ref _present[index], 1);
    }

    private protected void Clear(uint index) => Volatile.Write(ref _present[index], 0);

    /// <summary>Common update checks: unknown flags EINVAL, index past the end E2BIG.</summary>
    private protected void CheckUpdate(uint index, MapUpdateFlags flags)
    {
        if ((ulong)flags > (ulong)MapUpdateFlags.Exist)
            throw Fail("update", Errno.EINVAL);
        if (index >= (uint)MaxEntries)
            throw Fail("update", Errno.E2BIG);
    }

    public abstract bool TryGetTarget(uint key, out RedirectTarget target);

    public override byte* LookupForProgram(byte* key, int cpu) => IsPresent(*(uint*)key) ? Slot(*(uint*)key) : null;

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.EINVAL;

    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        var index = MemoryMarshal.Read<uint>(key);
        lock (Sync)
        {
            if (!IsPresent(index))
                return false;
            new ReadOnlySpan<byte>(Slot(index), ValueSize).CopyTo(value);
            return true;
        }
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("delete");
        var index = MemoryMarshal.Read<uint>(key);
        if (index >= (uint)MaxEntries)
            throw Fail("delete", Errno.EINVAL);
        lock (Sync)
            Clear(index);
        return true;
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => ArrayKeys.Next(this, key, nextKey);

    protected override void Dispose(bool disposing)
    {
        if (_slots != null)
            NativeMemory.Free(_slots);
    }
}

/// <summary>
/// BPF_MAP_TYPE_DEVMAP: slots of <c>struct bpf_devmap_val { u32 ifindex; u32 prog; }</c> (value size 4 or 8).
/// NOEXIST is EEXIST (every slot exists); an ifindex of 0 empties the slot (and then a program is EINVAL).
/// </summary>
public sealed unsafe class DevMap : RedirectArrayMap
{
    internal DevMap(MapSpec spec) : base(Validate(spec)) { }

    private static MapSpec Validate(MapSpec spec)
    {
        ValidateArrayShape(spec, 1 << 24);
        SpecCheck.Require(spec, spec.ValueSize is 4 or 8, Errno.EINVAL,
            $"value size must be 4 (ifindex) or 8 (struct bpf_devmap_val), got {spec.ValueSize}");
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NumaNode | MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly));
        return spec;
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        var index = MemoryMarshal.Read<uint>(key);
        CheckUpdate(index, flags);
        if (flags == MapUpdateFlags.NoExist)
            throw Fail("update", Errno.EEXIST);
        var ifindex = MemoryMarshal.Read<uint>(value);
        var program = ValueSize == 8 ? MemoryMarshal.Read<uint>(value[4..]) : 0;
        lock (Sync)
        {
            if (ifindex == 0)
            {
                if (program != 0)
                    throw Fail("update", Errno.EINVAL);
                Clear(index);
            }
            else
            {
                Store(index, value);
            }
        }
    }

    public override bool TryGetTarget(uint key, out RedirectTarget target)
    {
        if (!IsPresent(key))
        {
            target = default;
            return false;
        }
        var slot = Slot(key);
        target = new RedirectTarget(RedirectTargetKind.Device, IfIndex: *(uint*)slot,
            ProgramId: ValueSize == 8 ? ((uint*)slot)[1] : 0);
        return true;
    }
}

/// <summary>
/// BPF_MAP_TYPE_CPUMAP: slots of <c>struct bpf_cpumap_val { u32 qsize; u32 prog; }</c> (value size 4 or 8),
/// keyed by CPU. A CPU that is not possible is ENODEV; a queue size of 0 empties the slot; NOEXIST is EEXIST.
/// </summary>
public sealed unsafe class CpuMap : RedirectArrayMap
{
    /// <summary>NR_CPUS of common kernel builds: the bound on max entries.</summary>
    public const uint MaxCpus = 8192;

    internal CpuMap(MapSpec spec) : base(Validate(spec)) { }

    private static MapSpec Validate(MapSpec spec)
    {
        ValidateArrayShape(spec, MaxCpus);
        SpecCheck.Require(spec, spec.ValueSize is 4 or 8, Errno.EINVAL,
            $"value size must be 4 (queue size) or 8 (struct bpf_cpumap_val), got {spec.ValueSize}");
        SpecCheck.Flags(spec, (uint)MapCreateFlags.NumaNode);
        return spec;
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        var cpu = MemoryMarshal.Read<uint>(key);
        CheckUpdate(cpu, flags);
        if (flags == MapUpdateFlags.NoExist)
            throw Fail("update", Errno.EEXIST);
        if (cpu >= (uint)PossibleCpus)
            throw Fail("update", Errno.ENODEV);
        var queueSize = MemoryMarshal.Read<uint>(value);
        lock (Sync)
        {
            if (queueSize == 0)
                Clear(cpu);
            else
                Store(cpu, value);
        }
    }

    public override bool TryGetTarget(uint key, out RedirectTarget target)
    {
        if (!IsPresent(key))
        {
            target = default;
            return false;
        }
        var slot = Slot(key);
        target = new RedirectTarget(RedirectTargetKind.Cpu, Cpu: key, QueueSize: *(uint*)slot,
            ProgramId: ValueSize == 8 ? ((uint*)slot)[1] : 0);
        return true;
    }
}

/// <summary>
/// BPF_MAP_TYPE_XSKMAP: slot i holds the AF_XDP socket bound to rx queue i. Written as bytes, a value is the
/// socket's id (where the kernel takes its fd); user code may also attach the socket object itself
/// (<see cref="SetSocket"/>) for the runtime to deliver frames to. NOEXIST on a set slot is EEXIST and EXIST on
/// an empty one ENOENT; user-space lookups are not supported (EOPNOTSUPP), as in the kernel.
/// </summary>
public sealed unsafe class XskMap : RedirectArrayMap
{
    private readonly object?[] _sockets;

    internal XskMap(MapSpec spec) : base(Validate(spec)) => _sockets = new object?[MaxEntries];

    private static MapSpec Validate(MapSpec spec)
    {
        ValidateArrayShape(spec, 1 << 24);
        SpecCheck.Require(spec, spec.ValueSize == 4, Errno.EINVAL, $"value size must be 4 (a socket fd), got {spec.ValueSize}");
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NumaNode | MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly));
        return spec;
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        SetSocket(MemoryMarshal.Read<uint>(key), MemoryMarshal.Read<uint>(value), null, flags);
    }

    /// <summary>Binds queue <paramref name="queue"/> to a socket: its id and, optionally, the socket object.</summary>
    public void SetSocket(uint queue, uint socketId, object? socket, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUpdate(queue, flags);
        lock (Sync)
        {
            var present = IsPresent(queue);
            if (present && flags == MapUpdateFlags.NoExist)
                throw Fail("update", Errno.EEXIST);
            if (!present && flags == MapUpdateFlags.Exist)
                throw Fail("update", Errno.ENOENT);
            _sockets[queue] = socket;
            Store(queue, MemoryMarshal.AsBytes(new ReadOnlySpan<uint>(ref socketId)));
        }
    }

    /// <summary>The socket object attached to <paramref name="queue"/>, if any.</summary>
    public object? GetSocket(uint queue)
    {
        lock (Sync)
            return IsPresent(queue) ? _sockets[queue] : null;
    }

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => throw Fail("lookup", Errno.EOPNOTSUPP);

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        var result = base.Delete(key);
        lock (Sync)
            _sockets[MemoryMarshal.Read<uint>(key)] = null;
        return result;
    }

    public override bool TryGetTarget(uint key, out RedirectTarget target)
    {
        if (!IsPresent(key))
        {
            target = default;
            return false;
        }
        target = new RedirectTarget(RedirectTargetKind.Socket, QueueId: key, SocketId: *(uint*)Slot(key));
        return true;
    }
}

/// <summary>
/// BPF_MAP_TYPE_DEVMAP_HASH: devmap entries keyed by any u32 (often the ifindex itself), with hash semantics:
/// NOEXIST on a present key is EEXIST (BPF_EXIST on an absent key inserts, as the kernel does), E2BIG when full,
/// ENOENT deleting an absent key; an ifindex of 0 is EINVAL.
/// </summary>
public sealed unsafe class DevMapHash : ManagedMap, IRedirectMap
{
    private readonly HashMap _table;

    internal DevMapHash(MapSpec spec) : base(Validate(spec))
    {
        _table = new HashMap(new MapSpec
        {
            Name = spec.Name, Type = MapType.Hash, KeySize = 4, ValueSize = spec.ValueSize, MaxEntries = spec.MaxEntries,
        });
    }

    private static MapSpec Validate(MapSpec spec)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.KeySize(spec, 4);
        SpecCheck.Require(spec, spec.ValueSize is 4 or 8, Errno.EINVAL,
            $"value size must be 4 (ifindex) or 8 (struct bpf_devmap_val), got {spec.ValueSize}");
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NumaNode | MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly));
        return spec;
    }

    public bool TryGetTarget(uint key, out RedirectTarget target)
    {
        var slot = _table.LookupForProgram((byte*)&key, 0);
        if (slot == null)
        {
            target = default;
            return false;
        }
        target = new RedirectTarget(RedirectTargetKind.Device, IfIndex: *(uint*)slot,
            ProgramId: ValueSize == 8 ? ((uint*)slot)[1] : 0);
        return true;
    }

    public override byte* LookupForProgram(byte* key, int cpu) => _table.LookupForProgram(key, 0);
    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.EINVAL;
    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;
    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => _table.TryLookup(key, value);

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        if ((ulong)flags > (ulong)MapUpdateFlags.Exist || MemoryMarshal.Read<uint>(value) == 0)
            throw Fail("update", Errno.EINVAL);
        _table.Update(key, value, flags == MapUpdateFlags.NoExist ? flags : MapUpdateFlags.Any);
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        EnsureUserCanWrite("delete");
        return _table.Delete(key);
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => _table.TryGetNextKey(key, nextKey);
    public override void Reclaim() => _table.Reclaim();

    private protected override void ReclaimBefore(long oldestActive) => _table.ReclaimUnreachable();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _table?.Dispose();
    }
}
