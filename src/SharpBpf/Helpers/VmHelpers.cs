using System.Diagnostics;
using System.Text;
using SharpBpf.Maps;
using SharpBpf.Platform;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Helpers;

/// <summary>
/// The helper implementations, with the kernel's semantics and return codes. Calling convention, shared by every
/// engine: <c>static ulong Helper(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)</c>; r0 is the
/// return value. Pointer arguments are checked against the program's regions when the execution checks memory; a
/// bad map argument or a bad pointer traps (the kernel's verifier would have refused the program).
/// </summary>
public static unsafe partial class VmHelpers
{
    private static ulong Errno(int errno) => unchecked((ulong)(long)-errno);

    private static ManagedMap Map(VmExecution e, ulong handle, string helper)
    {
        var map = e.Program?.Collection?.ResolveMap(handle);
        if (map is null)
            throw e.Trap(TrapKind.BadHelperArgument, $"{helper}: 0x{handle:x} is not a map of this program");
        return map;
    }

    private static void Check(VmExecution e, ulong address, ulong length, bool write, string what)
    {
        if (e.CheckMemory)
            e.CheckRange(address, length, write, what);
    }

    // ---- maps ------------------------------------------------------------------------------------------------------

    public static ulong MapLookupElem(VmExecution e, ulong map, ulong key, ulong r3, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_map_lookup_elem");
        Check(e, key, (ulong)m.KeySize, false, "bpf_map_lookup_elem key");
        byte* value = m.LookupForProgram((byte*)key, e.Cpu);
        // A map-in-map lookup gives an inner map handle, which is not memory the program may touch.
        if (value != null && e.CheckMemory && m.Type is not (MapType.ArrayOfMaps or MapType.HashOfMaps))
            e.AddRegion((ulong)value, (ulong)m.ValueSize, writable: !m.IsReadOnlyForProgram);
        return (ulong)value;
    }

    public static ulong MapUpdateElem(VmExecution e, ulong map, ulong key, ulong value, ulong flags, ulong r5)
    {
        var m = Map(e, map, "bpf_map_update_elem");
        Check(e, key, (ulong)m.KeySize, false, "bpf_map_update_elem key");
        Check(e, value, (ulong)m.ValueSize, false, "bpf_map_update_elem value");
        return (ulong)(long)m.UpdateFromProgram((byte*)key, (byte*)value, flags, e.Cpu);
    }

    public static ulong MapDeleteElem(VmExecution e, ulong map, ulong key, ulong r3, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_map_delete_elem");
        Check(e, key, (ulong)m.KeySize, false, "bpf_map_delete_elem key");
        return (ulong)(long)m.DeleteFromProgram((byte*)key);
    }

    public static ulong MapPushElem(VmExecution e, ulong map, ulong value, ulong flags, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_map_push_elem");
        Check(e, value, (ulong)m.ValueSize, false, "bpf_map_push_elem value");
        return (ulong)(long)m.PushFromProgram((byte*)value, flags);
    }

    public static ulong MapPopElem(VmExecution e, ulong map, ulong value, ulong r3, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_map_pop_elem");
        Check(e, value, (ulong)m.ValueSize, true, "bpf_map_pop_elem value");
        return (ulong)(long)m.PopFromProgram((byte*)value);
    }

    public static ulong MapPeekElem(VmExecution e, ulong map, ulong value, ulong r3, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_map_peek_elem");
        Check(e, value, (ulong)m.ValueSize, true, "bpf_map_peek_elem value");
        return (ulong)(long)m.PeekFromProgram((byte*)value);
    }

    /// <summary>bpf_for_each_map_elem(map, callback, ctx, flags): callback(map, &amp;key, &amp;value, ctx) for each
    /// element until it returns 1; returns the number of elements visited. Array and hash maps (the kernel's list);
    /// others give -EINVAL. Allocates nothing once the execution has run it at this nesting depth: the visitor is
    /// a per-execution object, and the key and value are the map's own memory (the array key a copy), opened to the
    /// callback for its call only. Each element is charged to the instruction budget, as bpf_loop iterations are.</summary>
    public static ulong ForEachMapElem(VmExecution e, ulong map, ulong callback, ulong ctx, ulong flags, ulong r5)
    {
        var m = Map(e, map, "bpf_for_each_map_elem");
        if (flags != 0)
            return Errno(SharpBpf.Errno.EINVAL);
        var invoker = e.Invoker ?? throw e.Trap(TrapKind.BadCall, "bpf_for_each_map_elem: this engine cannot run callbacks");
        var visitor = e.RentForEachVisitor();
        try
        {
            visitor.Start(e, invoker, m, map, callback, ctx, e.CurrentInstruction);
            int result = m.ForEachForProgram(visitor.Visit, e.Cpu);
            return result < 0 ? Errno(-result) : (ulong)visitor.Count;
        }
        finally
        {
            visitor.End();
            e.ReturnForEachVisitor();
        }
    }

    // ---- ring buffers -------------------------------------------------------------------------------------------

    private static RingBufferMap Ring(VmExecution e, ulong map, string helper) =>
        Map(e, map, helper) as RingBufferMap ?? throw e.Trap(TrapKind.BadHelperArgument, $"{helper}: the map is not a ring buffer");

    public static ulong RingbufOutput(VmExecution e, ulong map, ulong data, ulong size, ulong flags, ulong r5)
    {
        var ring = Ring(e, map, "bpf_ringbuf_output");
        Check(e, data, size, false, "bpf_ringbuf_output data");
        return (ulong)(long)ring.Output((byte*)data, size, flags);
    }

    public static ulong RingbufReserve(VmExecution e, ulong map, ulong size, ulong flags, ulong r4, ulong r5)
    {
        var ring = Ring(e, map, "bpf_ringbuf_reserve");
        byte* sample = ring.Reserve(size, flags);
        if (sample != null && e.CheckMemory)
            e.AddRegion((ulong)sample, size, writable: true);
        return (ulong)sample;
    }

    private static void Commit(VmExecution e, ulong sample, ulong flags, bool discard, string helper)
    {
        var ring = e.Program?.Collection?.RingBufferOf(sample)
            ?? throw e.Trap(TrapKind.BadHelperArgument, $"{helper}: 0x{sample:x} is not a reserved ring buffer sample");
        e.RemoveRegion(sample);
        if (discard)
            ring.Discard((byte*)sample, flags);
        else
            ring.Submit((byte*)sample, flags);
    }

    public static ulong RingbufSubmit(VmExecution e, ulong sample, ulong flags, ulong r3, ulong r4, ulong r5)
    {
        Commit(e, sample, flags, discard: false, "bpf_ringbuf_submit");
        return 0;
    }

    public static ulong RingbufDiscard(VmExecution e, ulong sample, ulong flags, ulong r3, ulong r4, ulong r5)
    {
        Commit(e, sample, flags, discard: true, "bpf_ringbuf_discard");
        return 0;
    }

    // ---- spin locks ------------------------------------------------------------------------------------------------

    /// <summary>bpf_spin_lock(lock): takes the struct bpf_spin_lock (4 bytes of a map value; 0 free, 1 held),
    /// spinning while another execution holds it. The verifier proved the pointer is the value's lock field.</summary>
    public static ulong SpinLock(VmExecution e, ulong lockAddress, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        Check(e, lockAddress, 4, true, "bpf_spin_lock lock");
        if (lockAddress % 4 != 0)
            throw e.Trap(TrapKind.BadHelperArgument, $"bpf_spin_lock: 0x{lockAddress:x} is not a 4-byte aligned struct bpf_spin_lock");
        ref int word = ref *(int*)lockAddress;
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref word, 1, 0) != 0)
            spin.SpinOnce(sleep1Threshold: -1);
        return 0;
    }

    /// <summary>bpf_spin_unlock(lock): releases a lock taken with <see cref="SpinLock"/>.</summary>
    public static ulong SpinUnlock(VmExecution e, ulong lockAddress, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        Check(e, lockAddress, 4, true, "bpf_spin_unlock lock");
        if (lockAddress % 4 != 0)
            throw e.Trap(TrapKind.BadHelperArgument, $"bpf_spin_unlock: 0x{lockAddress:x} is not a 4-byte aligned struct bpf_spin_lock");
        if (Interlocked.Exchange(ref *(int*)lockAddress, 0) != 1)
            throw e.Trap(TrapKind.BadHelperArgument, $"bpf_spin_unlock: the lock at 0x{lockAddress:x} is not held");
        return 0;
    }

    public static ulong RingbufQuery(VmExecution e, ulong map, ulong flags, ulong r3, ulong r4, ulong r5) =>
        Ring(e, map, "bpf_ringbuf_query").Query(flags);

    /// <summary>bpf_perf_event_output(ctx, map, flags, data, size): a record to a managed perf event array.</summary>
    public static ulong PerfEventOutput(VmExecution e, ulong ctx, ulong map, ulong flags, ulong data, ulong size)
    {
        var perf = Map(e, map, "bpf_perf_event_output") as PerfEventArrayMap
            ?? throw e.Trap(TrapKind.BadHelperArgument, "bpf_perf_event_output: the map is not a perf event array");
        Check(e, data, size, false, "bpf_perf_event_output data");
        return (ulong)(long)perf.Output((byte*)data, size, flags, e.Cpu);
    }

    /// <summary>bpf_map_lookup_percpu_elem(map, key, cpu): the value <paramref name="cpu"/> holds in a per-CPU
    /// array or hash map; NULL for other map types, absent keys and CPUs at or above the possible CPU count.</summary>
    public static ulong MapLookupPercpuElem(VmExecution e, ulong map, ulong key, ulong cpu, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_map_lookup_percpu_elem");
        Check(e, key, (ulong)m.KeySize, false, "bpf_map_lookup_percpu_elem key");
        if (!m.IsPerCpu || (uint)cpu >= (uint)ManagedMap.PossibleCpus || cpu > uint.MaxValue)
            return 0;
        byte* value = m.LookupForProgram((byte*)key, (int)cpu);
        if (value != null && e.CheckMemory)
            e.AddRegion((ulong)value, (ulong)m.ValueSize, writable: !m.IsReadOnlyForProgram);
        return (ulong)value;
    }

    // ---- time, random, cpu -----------------------------------------------------------------------------------------

    private static readonly double s_nsPerTick = 1e9 / Stopwatch.Frequency;

    public static ulong KtimeGetNs(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        (ulong)(Stopwatch.GetTimestamp() * s_nsPerTick);

    public static ulong KtimeGetBootNs(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        (ulong)Environment.TickCount64 * 1_000_000UL;

    /// <summary>bpf_ktime_get_tai_ns: CLOCK_TAI, taken as the UTC time since the Unix epoch (Linux's TAI offset
    /// is 0 unless an NTP daemon sets it).</summary>
    public static ulong KtimeGetTaiNs(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        (ulong)(DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100UL;

    /// <summary>The tick rate bpf_jiffies64 counts at (the kernel's CONFIG_HZ; 250 on common distribution kernels).</summary>
    public const int JiffiesPerSecond = 250;

    /// <summary>bpf_jiffies64: ticks of <see cref="JiffiesPerSecond"/> since boot, starting at the kernel's
    /// INITIAL_JIFFIES (5 minutes before the 32-bit wrap) as jiffies do.</summary>
    public static ulong Jiffies64(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        unchecked((ulong)(uint)(-300 * JiffiesPerSecond) + (ulong)Environment.TickCount64 * JiffiesPerSecond / 1000UL);

    /// <summary>bpf_get_numa_node_id: the VM has one NUMA node, 0.</summary>
    public static ulong GetNumaNodeId(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => 0;

    public static ulong GetPrandomU32(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => e.NextRandom();

    public static ulong GetSmpProcessorId(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => (uint)e.Cpu;

    // ---- trace_printk ---------------------------------------------------------------------------------------------

    /// <summary>bpf_trace_printk(fmt, fmt_size, a1, a2, a3): formats as the kernel does (%d %i %u %x %X %ld %lu %lx
    /// %lld %llu %llx %p %s %c %%, at most three arguments) and records the line; returns its length.</summary>
    public static ulong TracePrintk(VmExecution e, ulong fmt, ulong size, ulong a1, ulong a2, ulong a3)
    {
        Check(e, fmt, size, false, "bpf_trace_printk format");
        var format = new ReadOnlySpan<byte>((void*)fmt, (int)Math.Min(size, 1024));
        int nul = format.IndexOf((byte)0);
        if (nul < 0)
            return Errno(SharpBpf.Errno.EINVAL);
        format = format[..nul];
        var args = new[] { a1, a2, a3 };
        int argIndex = 0;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = (char)format[i];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }
            if (++i >= format.Length)
                return Errno(SharpBpf.Errno.EINVAL);
            if (format[i] == '%')
            {
                sb.Append('%');
                continue;
            }
            int longs = 0;
            while (i < format.Length && format[i] == 'l')
            {
                longs++;
                i++;
            }
            if (i >= format.Length || argIndex >= 3)
                return Errno(SharpBpf.Errno.EINVAL);
            ulong v = args[argIndex++];
            switch ((char)format[i])
            {
                case 'd' or 'i': sb.Append(longs > 0 ? (long)v : (int)v); break;
                case 'u': sb.Append(longs > 0 ? v : (uint)v); break;
                case 'x': sb.Append(longs > 0 ? v.ToString("x") : ((uint)v).ToString("x")); break;
                case 'X': sb.Append(longs > 0 ? v.ToString("X") : ((uint)v).ToString("X")); break;
                case 'c': sb.Append((char)(byte)v); break;
                case 'p': sb.Append("0x").Append(v.ToString("x")); break;
                case 's':
                {
                    // The kernel copies the string with strncpy_from_kernel_nofault: a bad pointer prints an empty
                    // string and never fails the program. Here the copy also stops where the memory the program may
                    // read ends (the kernel would read on into whatever follows), with or without run-time checks.
                    var text = new StringBuilder();
                    for (ulong p = v; text.Length < 256 && e.IsAllowed(p, 1, write: false); p++)
                    {
                        byte b = *(byte*)p;
                        if (b == 0)
                            break;
                        text.Append((char)b);
                    }
                    sb.Append(text);
                    break;
                }
                default:
                    return Errno(SharpBpf.Errno.EINVAL);
            }
        }
        var line = sb.ToString().TrimEnd('\n');
        e.WriteTrace(line);
        return (ulong)sb.Length;
    }

    // ---- strings and probe reads ---------------------------------------------------------------------------------

    /// <summary>bpf_strncmp(s1, s1_sz, s2): the kernel's strncmp(s1, s2, s1_sz) on unsigned bytes: -1, 0 or 1.</summary>
    public static ulong Strncmp(VmExecution e, ulong s1, ulong size, ulong s2, ulong r4, ulong r5)
    {
        Check(e, s1, size, false, "bpf_strncmp s1");
        for (ulong i = 0; i < size; i++)
        {
            Check(e, s2 + i, 1, false, "bpf_strncmp s2");
            byte c1 = *(byte*)(s1 + i), c2 = *(byte*)(s2 + i);
            if (c1 != c2)
                return c1 < c2 ? ulong.MaxValue : 1UL;
            if (c1 == 0)
                break;
        }
        return 0;
    }

    /// <summary>bpf_probe_read_kernel(dst, size, src): copies when all of src is memory the program may read (the
    /// VM's whole "kernel"); otherwise zeroes dst and returns -EFAULT, as a faulting read does in the kernel.</summary>
    public static ulong ProbeReadKernel(VmExecution e, ulong dst, ulong size, ulong src, ulong r4, ulong r5)
    {
        Check(e, dst, size, true, "bpf_probe_read_kernel dst");
        if (size == 0)
            return 0;
        if (!e.IsAllowed(src, size, write: false))
        {
            new Span<byte>((void*)dst, (int)size).Clear();
            return Errno(SharpBpf.Errno.EFAULT);
        }
        Buffer.MemoryCopy((void*)src, (void*)dst, (long)size, (long)size);
        return 0;
    }

    /// <summary>bpf_probe_read_kernel_str(dst, size, src): copies the NUL-terminated string at src, at most size - 1
    /// bytes and a NUL; returns the length copied including the NUL. A byte the program may not read zeroes dst and
    /// gives -EFAULT.</summary>
    public static ulong ProbeReadKernelStr(VmExecution e, ulong dst, ulong size, ulong src, ulong r4, ulong r5)
    {
        Check(e, dst, size, true, "bpf_probe_read_kernel_str dst");
        if (size == 0)
            return 0;
        byte* to = (byte*)dst;
        for (ulong i = 0; i < size; i++)
        {
            if (!e.IsAllowed(src + i, 1, write: false))
            {
                new Span<byte>(to, (int)size).Clear();
                return Errno(SharpBpf.Errno.EFAULT);
            }
            byte b = i == size - 1 ? (byte)0 : *(byte*)(src + i);
            to[i] = b;
            if (b == 0)
                return i + 1;
        }
        return size;
    }

    // ---- calls -------------------------------------------------------------------------------------------------------

    /// <summary>bpf_tail_call is executed by the engines (it does not return on success); this entry only exists so
    /// the helper has a descriptor. A direct call is a bug in an engine.</summary>
    public static ulong TailCallUnsupported(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        throw new UnreachableException("bpf_tail_call must be executed by the engine");

    /// <summary>
    /// The target of bpf_tail_call(ctx, prog_array, index), or null when the call falls through (index out of
    /// range, empty slot, or more than <see cref="VmOptions.MaxTailCalls"/> tail calls in this run). Program
    /// arrays hold <see cref="VmProgram.Id"/>s as their 4-byte values.
    /// </summary>
    public static VmProgram? ResolveTailCall(VmExecution e, ulong map, ulong index)
    {
        var m = Map(e, map, "bpf_tail_call");
        if (m.Type != MapType.ProgArray)
            throw e.Trap(TrapKind.BadHelperArgument, $"bpf_tail_call: map '{m.Name}' is not a program array");
        if (index >= (ulong)m.MaxEntries || e.TailCalls >= e.Options.MaxTailCalls)
            return null;
        if (m is ProgramArrayMap programs)
        {
            if (programs.GetProgram((uint)index) is not VmProgram next)
                return null;
            e.TailCalls++;
            return CheckTailCallMode(e, next);
        }
        uint key = (uint)index;
        byte* value = m.LookupForProgram((byte*)&key, e.Cpu);
        if (value == null)
            return null;
        var target = VmProgram.FromId(*(uint*)value);
        if (target is null)
            return null;
        e.TailCalls++;
        return CheckTailCallMode(e, target);
    }

    // A run that started unchecked (a verified program) registers no regions and, in the interpreter, keeps running
    // unchecked: continuing it in a program that needs checks would drop them, so such a tail call traps.
    private static VmProgram CheckTailCallMode(VmExecution e, VmProgram target) =>
        !e.CheckMemory && target.CheckMemory
            ? throw e.Trap(TrapKind.BadCall, $"bpf_tail_call: program '{target.Name}' was not verified and cannot continue a run of a verified program")
            : target;

    /// <summary>bpf_loop(nr, callback, ctx, flags): callback(i, ctx) until it returns 1; returns the iterations run.</summary>
    public static ulong Loop(VmExecution e, ulong count, ulong callback, ulong ctx, ulong flags, ulong r5)
    {
        if (flags != 0)
            return Errno(SharpBpf.Errno.EINVAL);
        if (count > 1 << 23)
            return Errno(SharpBpf.Errno.E2BIG);
        var invoker = e.Invoker ?? throw e.Trap(TrapKind.BadCall, "bpf_loop: this engine cannot run callbacks");
        int at = e.CurrentInstruction;
        for (ulong i = 0; i < count; i++)
        {
            if (--e.Budget < 0)
                throw e.Trap(TrapKind.BudgetExhausted, $"more than {e.Options.InstructionBudget} instructions in one run");
            ulong result = invoker.Invoke(e, callback, i, ctx, 0, 0, 0);
            e.CurrentInstruction = at;
            if (result != 0)
                return i + 1;
        }
        return count;
    }

    /// <summary>The bpf_conformance suite's helper 5: returns its first argument.</summary>
    public static ulong ConformanceTestHelper(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) => r1;

    // ---- checksum ------------------------------------------------------------------------------------------------

    /// <summary>bpf_csum_diff(from, from_size, to, to_size, seed): the 32-bit one's-complement sum of seed, the
    /// complement of every 32-bit word of from, and every word of to (as x86-64's csum_partial folds it).</summary>
    public static ulong CsumDiff(VmExecution e, ulong from, ulong fromSize, ulong to, ulong toSize, ulong seed)
    {
        if (((fromSize | toSize) & 3) != 0 || fromSize + toSize > 512 || fromSize > 512 || toSize > 512)
            return Errno(SharpBpf.Errno.EINVAL);
        if (fromSize > 0)
            Check(e, from, fromSize, false, "bpf_csum_diff from");
        if (toSize > 0)
            Check(e, to, toSize, false, "bpf_csum_diff to");
        ulong sum = (uint)seed;
        for (ulong i = 0; i < fromSize; i += 4)
            sum += ~*(uint*)(from + i);
        for (ulong i = 0; i < toSize; i += 4)
            sum += *(uint*)(to + i);
        while ((sum >> 32) != 0)
            sum = (sum & 0xffffffff) + (sum >> 32);
        return (uint)sum;
    }

    // ---- XDP -------------------------------------------------------------------------------------------------------

    private static XdpContext Xdp(VmExecution e, ulong ctx, string helper)
    {
        var xdp = e.Xdp;
        if (xdp is null || ctx != (ulong)xdp.MetadataBlock)
            throw e.Trap(TrapKind.BadHelperArgument, $"{helper}: the first argument must be the xdp_md context");
        return xdp;
    }

    public static ulong XdpAdjustHead(VmExecution e, ulong ctx, ulong delta, ulong r3, ulong r4, ulong r5)
    {
        var xdp = Xdp(e, ctx, "bpf_xdp_adjust_head");
        int result = xdp.AdjustHead((int)delta);
        e.RefreshPacket();
        return (ulong)(long)result;
    }

    public static ulong XdpAdjustMeta(VmExecution e, ulong ctx, ulong delta, ulong r3, ulong r4, ulong r5)
    {
        var xdp = Xdp(e, ctx, "bpf_xdp_adjust_meta");
        int result = xdp.AdjustMeta((int)delta);
        e.RefreshPacket();
        return (ulong)(long)result;
    }

    public static ulong XdpAdjustTail(VmExecution e, ulong ctx, ulong delta, ulong r3, ulong r4, ulong r5)
    {
        var xdp = Xdp(e, ctx, "bpf_xdp_adjust_tail");
        int result = xdp.AdjustTail((int)delta);
        e.RefreshPacket();
        return (ulong)(long)result;
    }

    public static ulong XdpGetBuffLen(VmExecution e, ulong ctx, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        var xdp = Xdp(e, ctx, "bpf_xdp_get_buff_len");
        return (ulong)(xdp.DataEnd - xdp.Data);
    }

    public static ulong XdpLoadBytes(VmExecution e, ulong ctx, ulong offset, ulong buffer, ulong length, ulong r5)
    {
        var xdp = Xdp(e, ctx, "bpf_xdp_load_bytes");
        Check(e, buffer, length, true, "bpf_xdp_load_bytes buffer");
        ulong packetLength = (ulong)(xdp.DataEnd - xdp.Data);
        if ((uint)offset != offset || length == 0 || offset + length > packetLength || offset + length < offset)
            return Errno(SharpBpf.Errno.EINVAL);
        Buffer.MemoryCopy(xdp.Data + offset, (void*)buffer, (long)length, (long)length);
        return 0;
    }

    public static ulong XdpStoreBytes(VmExecution e, ulong ctx, ulong offset, ulong buffer, ulong length, ulong r5)
    {
        var xdp = Xdp(e, ctx, "bpf_xdp_store_bytes");
        Check(e, buffer, length, false, "bpf_xdp_store_bytes buffer");
        ulong packetLength = (ulong)(xdp.DataEnd - xdp.Data);
        if ((uint)offset != offset || length == 0 || offset + length > packetLength || offset + length < offset)
            return Errno(SharpBpf.Errno.EINVAL);
        Buffer.MemoryCopy((void*)buffer, xdp.Data + offset, (long)length, (long)length);
        return 0;
    }

    /// <summary>bpf_redirect(ifindex, flags): XDP_REDIRECT with the interface recorded; flags must be 0 (otherwise
    /// XDP_ABORTED, as in the kernel).</summary>
    public static ulong Redirect(VmExecution e, ulong ifindex, ulong flags, ulong r3, ulong r4, ulong r5)
    {
        if (flags != 0)
            return (ulong)XdpAction.Aborted;
        e.SetRedirect(XdpRedirectKind.Interface, (uint)ifindex, null, flags);
        return (ulong)XdpAction.Redirect;
    }

    /// <summary>bpf_redirect_map(map, key, flags): XDP_REDIRECT when the map has an entry for the key, otherwise the
    /// action in the low two bits of flags.</summary>
    public static ulong RedirectMap(VmExecution e, ulong map, ulong key, ulong flags, ulong r4, ulong r5)
    {
        var m = Map(e, map, "bpf_redirect_map");
        var kind = m.Type switch
        {
            MapType.Devmap or MapType.DevmapHash => XdpRedirectKind.Interface,
            MapType.Cpumap => XdpRedirectKind.Cpu,
            MapType.Xskmap => XdpRedirectKind.Socket,
            _ => throw e.Trap(TrapKind.BadHelperArgument, $"bpf_redirect_map: map '{m.Name}' ({m.Type}) is not a devmap, cpumap or xskmap"),
        };
        uint k = (uint)key;
        // As the kernel's __bpf_xdp_redirect_map: flag bits other than a fallback action (the low two) and, for
        // device maps, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS abort; a broadcast redirects whatever the key holds
        // (every entry, recorded with its flags); any other miss returns the fallback action.
        const ulong ActionMask = 3, Broadcast = 1 << 3, ExcludeIngress = 1 << 4;
        ulong allowed = ActionMask | (kind == XdpRedirectKind.Interface ? Broadcast | ExcludeIngress : 0);
        if ((flags & ~allowed) != 0)
            return (ulong)XdpAction.Aborted;
        if ((flags & Broadcast) != 0)
        {
            e.SetRedirect(kind, k, m.Name, flags);
            return (ulong)XdpAction.Redirect;
        }
        if (m is IRedirectMap redirect)
        {
            if (!redirect.TryGetTarget(k, out var target))
                return flags & 3;
            uint index = target.Kind switch
            {
                RedirectTargetKind.Device => target.IfIndex,
                RedirectTargetKind.Cpu => target.Cpu,
                _ => target.QueueId,
            };
            e.SetRedirect(kind, index, m.Name, flags);
            return (ulong)XdpAction.Redirect;
        }
        byte* value = m.LookupForProgram((byte*)&k, e.Cpu);
        if (value == null)
            return flags & 3;
        e.SetRedirect(kind, kind == XdpRedirectKind.Interface && m.ValueSize >= 4 ? *(uint*)value : k, m.Name, flags);
        return (ulong)XdpAction.Redirect;
    }
}
