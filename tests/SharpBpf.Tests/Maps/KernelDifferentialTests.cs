using System.Runtime.InteropServices;
using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

/// <summary>
/// The managed maps against the running kernel: the same specs and the same operations through bpf(2) must give
/// the same errnos and values. This file talks to the kernel itself through a deliberately tiny raw syscall
/// (map create/update/lookup/delete/next-key only) so the maps can be checked before the Linux backend exists;
/// it skips, saying why, where there is no BPF (not Linux x86-64, not root).
/// </summary>
public unsafe class KernelDifferentialTests
{
    private enum Op { Update, Lookup, Delete, NextKey, Pop }

    private sealed record Step(Op Op, byte[]? Key, byte[]? Value = null, ulong Flags = 0);

    [DllImport("libc", SetLastError = true, EntryPoint = "syscall")]
    private static extern long Syscall(long number, long cmd, void* attr, long size);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    private const long SysBpf = 321; // x86-64
    private const int AttrSize = 128;

    private static void RequireKernel()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            Assert.Skip("the kernel cross-check needs Linux on x86-64");
        if (Environment.UserName != "root")
            Assert.Skip("creating BPF maps needs root (CAP_BPF)");
    }

    private static int Bpf(int cmd, byte* attr)
    {
        var result = Syscall(SysBpf, cmd, attr, AttrSize);
        return result < 0 ? -Marshal.GetLastPInvokeError() : (int)result;
    }

    private static int KernelCreate(MapSpec spec, int innerFd = 0)
    {
        var attr = stackalloc byte[AttrSize];
        new Span<byte>(attr, AttrSize).Clear();
        var u = (uint*)attr;
        u[0] = (uint)spec.Type;
        u[1] = spec.KeySize;
        u[2] = spec.ValueSize;
        u[3] = spec.MaxEntries;
        u[4] = spec.Flags;
        u[5] = (uint)innerFd;
        var fd = Bpf(0, attr);
        if (fd == -Errno.EPERM)
            Assert.Skip("the kernel refused BPF_MAP_CREATE with EPERM (no CAP_BPF here)");
        return fd;
    }

    private static int KernelElem(int cmd, int fd, byte[]? key, byte[]? value, ulong flags)
    {
        var attr = stackalloc byte[AttrSize];
        new Span<byte>(attr, AttrSize).Clear();
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            *(uint*)attr = (uint)fd;
            *(ulong*)(attr + 8) = (ulong)k;
            *(ulong*)(attr + 16) = (ulong)v;
            *(ulong*)(attr + 24) = flags;
            var r = Bpf(cmd, attr);
            return r < 0 ? -r : 0;
        }
    }

    private static int Managed(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (MapException e)
        {
            return e.ErrorNumber;
        }
    }

    /// <summary>Runs the steps on both and compares each errno and each value read.</summary>
    private static void Compare(MapSpec spec, IEnumerable<Step> steps, int kernelInnerFd = 0)
    {
        RequireKernel();
        var fd = KernelCreate(spec, kernelInnerFd);
        ManagedMap? map = null;
        var managedCreate = Managed(() => map = MapFactory.Create(spec));
        try
        {
            Assert.True(fd >= 0 ? managedCreate == 0 : managedCreate == -fd,
                $"{spec.Type} key {spec.KeySize} value {spec.ValueSize} max {spec.MaxEntries} flags 0x{spec.Flags:x}: " +
                $"kernel {(fd >= 0 ? "created it" : Errno.Name(-fd))}, managed {(managedCreate == 0 ? "created it" : Errno.Name(managedCreate))}");
            if (fd < 0)
                return;
            var index = 0;
            foreach (var step in steps)
            {
                var valueSize = step.Op == Op.NextKey ? (int)spec.KeySize : (int)spec.ValueSize;
                var kernelOut = new byte[valueSize];
                var managedOut = new byte[valueSize];
                int kernel, managed;
                switch (step.Op)
                {
                    case Op.Update:
                        kernel = KernelElem(2, fd, step.Key, step.Value, step.Flags);
                        managed = Managed(() => map!.Update(step.Key ?? [], step.Value, (MapUpdateFlags)step.Flags));
                        break;
                    case Op.Lookup:
                        kernel = KernelElem(1, fd, step.Key, kernelOut, 0);
                        managed = Managed(() => { if (!map!.TryLookup(step.Key ?? [], managedOut)) throw new MapException("", "", Errno.ENOENT); });
                        break;
                    case Op.Delete:
                        kernel = KernelElem(3, fd, step.Key, null, 0);
                        managed = Managed(() => { if (!map!.Delete(step.Key ?? [])) throw new MapException("", "", Errno.ENOENT); });
                        break;
                    case Op.NextKey:
                        kernel = KernelElem(4, fd, step.Key, kernelOut, 0);
                        managed = Managed(() => { if (!map!.TryGetNextKey(step.Key ?? [], managedOut)) throw new MapException("", "", Errno.ENOENT); });
                        break;
                    default:
                        kernel = KernelElem(21, fd, null, kernelOut, 0);
                        managed = Managed(() => { if (!((QueueStackMap)map!).TryPop(managedOut)) throw new MapException("", "", Errno.ENOENT); });
                        break;
                }
                var where = $"{spec.Type} step {index} {step.Op} key {Hex(step.Key)} value {Hex(step.Value)} flags {step.Flags}";
                Assert.True(kernel == managed, $"{where}: kernel {Errno.Name(kernel)}, managed {Errno.Name(managed)}");
                if (kernel == 0 && step.Op is Op.Lookup or Op.Pop or Op.NextKey)
                    Assert.True(kernelOut.AsSpan().SequenceEqual(managedOut), $"{where}: kernel {Hex(kernelOut)}, managed {Hex(managedOut)}");
                index++;
            }
        }
        finally
        {
            if (fd >= 0)
                close(fd);
            map?.Dispose();
        }
    }

    private static string Hex(byte[]? b) => b is null ? "null" : Convert.ToHexString(b);

    private static MapSpec Spec(MapType type, uint key, uint value, uint max, uint flags = 0) =>
        new() { Name = "diff", Type = type, KeySize = key, ValueSize = value, MaxEntries = max, Flags = flags };

    public static TheoryData<int, uint, uint, uint, uint> Specs() => new()
    {
        { (int)MapType.Array, 4, 8, 4, 0 }, { (int)MapType.Array, 8, 8, 4, 0 }, { (int)MapType.Array, 4, 0, 4, 0 },
        { (int)MapType.Array, 4, 8, 0, 0 }, { (int)MapType.Array, 4, 8, 4, 1 }, { (int)MapType.Array, 4, 8, 4, 0x18 },
        { (int)MapType.PercpuArray, 4, 40000, 4, 0 }, { (int)MapType.PercpuArray, 4, 8, 4, 0x400 },
        { (int)MapType.Hash, 0, 8, 4, 0 }, { (int)MapType.Hash, 4, 0, 4, 0 }, { (int)MapType.Hash, 513, 8, 4, 0 },
        { (int)MapType.Hash, 4, 8, 4, 2 }, { (int)MapType.Hash, 4, 8, 4, 0x400 }, { (int)MapType.LruHash, 4, 8, 4, 1 },
        { (int)MapType.LpmTrie, 8, 4, 4, 0 }, { (int)MapType.LpmTrie, 4, 4, 4, 1 }, { (int)MapType.LpmTrie, 261, 4, 4, 1 },
        { (int)MapType.LpmTrie, 8, 0, 4, 1 }, { (int)MapType.Queue, 4, 4, 4, 0 }, { (int)MapType.Stack, 0, 0, 4, 0 },
        { (int)MapType.Queue, 0, 4, 4, 1 }, { (int)MapType.Ringbuf, 0, 0, 4096 * 3, 0 }, { (int)MapType.Ringbuf, 4, 0, 4096, 0 },
        { (int)MapType.Ringbuf, 0, 0, 4096, 0 }, { (int)MapType.ProgArray, 4, 8, 4, 0 }, { (int)MapType.ProgArray, 4, 4, 4, 0x80 },
        { (int)MapType.Devmap, 4, 6, 4, 0 }, { (int)MapType.DevmapHash, 4, 6, 4, 0 }, { (int)MapType.Cpumap, 4, 12, 2, 0 },
        { (int)MapType.Xskmap, 4, 8, 4, 0 }, { (int)MapType.Xskmap, 4, 4, 4, 0 },
        { (int)MapType.Hash, 65536, 8, 4, 0 }, { (int)MapType.Hash, 1 << 22, 8, 4, 0 }, { (int)MapType.Hash, 4, 1 << 22, 4, 0 },
        { (int)MapType.Hash, 4, (1 << 22) - 600, 4, 0 }, { (int)MapType.HashOfMaps, 4, 8, 4, 0 }, { (int)MapType.ArrayOfMaps, 4, 4, 4, 0 },
        { (int)MapType.Cpumap, 4, 4, 9000, 0 }, { (int)MapType.Cpumap, 4, 4, 4, 0x80 }, { (int)MapType.Devmap, 4, 4, 4, 0x80 },
        { (int)MapType.Devmap, 4, 4, 4, 0x400 }, { (int)MapType.Queue, 0, 4, 4, 0x80 }, { (int)MapType.Array, 4, 5 << 20, 1, 0 },
        { (int)MapType.Array, 4, 4 << 20, 1, 0 }, { (int)MapType.LruHash, 4, 8, 4, 2 }, { (int)MapType.Ringbuf, 0, 0, 1u << 20, 0 },
        { (int)MapType.PerfEventArray, 4, 8, 4, 0 }, { (int)MapType.PerfEventArray, 4, 4, 0, 0 }, { (int)MapType.PerfEventArray, 8, 4, 4, 0 },
    };

    [Theory]
    [MemberData(nameof(Specs))]
    public void SpecsAreAcceptedOrRefusedAsTheKernelDoes(int type, uint key, uint value, uint max, uint flags) =>
        Compare(Spec((MapType)type, key, value, max, flags), []);

    [Fact]
    public void ArrayOperations() => Compare(Spec(MapType.Array, 4, 8, 3),
    [
        new(Op.Lookup, U32(1)), new(Op.Update, U32(1), U64(5), 1), new(Op.Update, U32(1), U64(5), 2),
        new(Op.Update, U32(3), U64(5)), new(Op.Update, U32(1), U64(6), 3), new(Op.Update, U32(1), U64(6), 4),
        new(Op.Lookup, U32(1)), new(Op.Lookup, U32(3)), new(Op.Delete, U32(1)), new(Op.Delete, U32(7)),
        new(Op.NextKey, U32(1)), new(Op.NextKey, U32(2)), new(Op.NextKey, U32(9)),
    ]);

    [Fact]
    public void HashOperations() => Compare(Spec(MapType.Hash, 4, 8, 2),
    [
        new(Op.Lookup, U32(1)), new(Op.Update, U32(1), U64(1), 2), new(Op.Update, U32(1), U64(1), 1),
        new(Op.Update, U32(1), U64(2), 1), new(Op.Update, U32(2), U64(2)), new(Op.Update, U32(3), U64(3)),
        new(Op.Update, U32(3), U64(3), 1), new(Op.Update, U32(3), U64(3), 2), new(Op.Update, U32(2), U64(9)),
        new(Op.Update, U32(2), U64(9), 1), new(Op.Update, U32(2), U64(9), 4), new(Op.Update, U32(2), U64(9), 3),
        new(Op.Lookup, U32(2)), new(Op.Delete, U32(2)), new(Op.Delete, U32(2)), new(Op.Update, U32(3), U64(3)),
        new(Op.Lookup, U32(3)), new(Op.Lookup, U32(1)),
    ]);

    [Fact]
    public void LruHashNeverRefusesNewKeys() => Compare(Spec(MapType.LruHash, 4, 8, 64),
        Enumerable.Range(0, 300).Select(i => new Step(Op.Update, U32((uint)i), U64((ulong)i)))
            .Append(new Step(Op.Update, U32(1000), U64(1), 1)).Append(new Step(Op.Lookup, U32(1000)))
            .Append(new Step(Op.Update, U32(5000), U64(1), 2)).Append(new Step(Op.Update, U32(1), U64(1), 7)));

    private static byte[] Lpm(uint prefix, params byte[] data) => [.. U32(prefix), .. data];

    [Fact]
    public void LpmTrieOperations() => Compare(Spec(MapType.LpmTrie, 8, 4, 3, 1),
    [
        new(Op.Update, Lpm(8, 10, 0, 0, 0), U32(8)), new(Op.Update, Lpm(16, 10, 1, 0, 0), U32(16)),
        new(Op.Update, Lpm(16, 10, 1, 9, 9), U32(17), 1), new(Op.Update, Lpm(24, 10, 1, 2, 0), U32(24), 2),
        new(Op.Update, Lpm(33, 10, 1, 2, 0), U32(24)), new(Op.Update, Lpm(24, 10, 1, 2, 0), U32(24), 4),
        new(Op.Update, Lpm(24, 10, 1, 2, 0), U32(24)), new(Op.Update, Lpm(24, 10, 1, 3, 0), U32(25)),
        new(Op.Update, Lpm(16, 10, 1, 0, 0), U32(18), 2),
        new(Op.Lookup, Lpm(32, 10, 1, 2, 3)), new(Op.Lookup, Lpm(32, 10, 1, 7, 3)), new(Op.Lookup, Lpm(32, 10, 9, 2, 3)),
        new(Op.Lookup, Lpm(12, 10, 1, 2, 3)), new(Op.Lookup, Lpm(32, 11, 1, 2, 3)),
        new(Op.NextKey, null), new(Op.NextKey, Lpm(24, 10, 1, 2, 0)), new(Op.NextKey, Lpm(16, 10, 1, 0, 0)),
        new(Op.NextKey, Lpm(8, 10, 0, 0, 0)), new(Op.NextKey, Lpm(30, 1, 1, 1, 1)),
        new(Op.Delete, Lpm(9, 10, 0, 0, 0)), new(Op.Delete, Lpm(40, 10, 0, 0, 0)), new(Op.Delete, Lpm(16, 10, 1, 0, 0)),
        new(Op.Lookup, Lpm(32, 10, 1, 7, 3)), new(Op.Delete, Lpm(16, 10, 1, 0, 0)), new(Op.Delete, Lpm(8, 10, 0, 0, 0)),
        new(Op.Lookup, Lpm(32, 10, 1, 2, 3)), new(Op.NextKey, null),
    ]);

    [Theory]
    [InlineData(MapType.Queue)]
    [InlineData(MapType.Stack)]
    public void QueueAndStackOperations(MapType type) => Compare(Spec(type, 0, 4, 3),
    [
        new(Op.Pop, null), new(Op.Lookup, null), new(Op.Update, null, U32(1)), new(Op.Update, null, U32(2), 1),
        new(Op.Update, null, U32(2), 4), new(Op.Update, null, U32(2)), new(Op.Update, null, U32(3)),
        new(Op.Update, null, U32(4)), new(Op.Update, null, U32(4), 2), new(Op.Lookup, null), new(Op.Pop, null),
        new(Op.Pop, null), new(Op.Delete, null), new(Op.Pop, null), new(Op.Pop, null),
    ]);

    [Fact]
    public void DevMapOperations() => Compare(Spec(MapType.Devmap, 4, 4, 4),
    [
        new(Op.Lookup, U32(0)), new(Op.Update, U32(0), U32(1)), new(Op.Lookup, U32(0)), new(Op.Update, U32(0), U32(1), 1),
        new(Op.Update, U32(1), U32(1), 2), new(Op.Update, U32(4), U32(1)), new(Op.Update, U32(0), U32(1), 4),
        new(Op.Update, U32(0), U32(0)), new(Op.Lookup, U32(0)), new(Op.Delete, U32(2)), new(Op.Delete, U32(4)),
        new(Op.NextKey, U32(1)), new(Op.NextKey, U32(3)),
    ]);

    [Fact]
    public void DevMapHashOperations() => Compare(Spec(MapType.DevmapHash, 4, 4, 2),
    [
        new(Op.Update, U32(7), U32(1)), new(Op.Update, U32(7), U32(1), 1), new(Op.Update, U32(8), U32(1), 2),
        new(Op.Update, U32(8), U32(0)), new(Op.Update, U32(8), U32(1)), new(Op.Update, U32(9), U32(1)),
        new(Op.Lookup, U32(8)), new(Op.Delete, U32(8)), new(Op.Delete, U32(8)), new(Op.Lookup, U32(8)),
    ]);

    [Fact]
    public void CpuMapOperations() => Compare(Spec(MapType.Cpumap, 4, 4, (uint)ManagedMap.PossibleCpus),
    [
        new(Op.Update, U32(0), U32(64)), new(Op.Lookup, U32(0)), new(Op.Update, U32(0), U32(64), 1),
        new(Op.Update, U32((uint)ManagedMap.PossibleCpus), U32(64)), new(Op.Update, U32(0), U32(0)),
        new(Op.Lookup, U32(0)), new(Op.Delete, U32(0)), new(Op.Delete, U32(99)),
    ]);

    private static void RequireSameCpuCount()
    {
        var possible = File.Exists("/sys/devices/system/cpu/possible") ? File.ReadAllText("/sys/devices/system/cpu/possible").Trim() : "";
        var parts = possible.Split('-');
        if (parts.Length != 2 || parts[0] != "0" || int.Parse(parts[1]) + 1 != ManagedMap.PossibleCpus)
            Assert.Skip($"the kernel's possible CPUs ({possible}) differ from ManagedMap.PossibleCpus ({ManagedMap.PossibleCpus})");
    }

    private static byte[] PerCpu(params ulong[] values) => values.SelectMany(U64).ToArray();

    [Fact]
    public void PerCpuArrayValuesMatch()
    {
        RequireSameCpuCount();
        var n = ManagedMap.PossibleCpus;
        // The map holds 4-byte values; user space passes each CPU's value rounded up to 8.
        var values = PerCpu(Enumerable.Range(1, n).Select(i => (ulong)i * 0x0101).ToArray());
        CompareRaw(Spec(MapType.PercpuArray, 4, 4, 2), 8 * n,
        [
            new(Op.Update, U32(1), values), new(Op.Lookup, U32(1)), new(Op.Lookup, U32(0)), new(Op.Update, U32(1), values, 1),
        ]);
    }

    [Fact]
    public void PerCpuHashValuesMatch()
    {
        RequireSameCpuCount();
        var n = ManagedMap.PossibleCpus;
        var values = PerCpu(Enumerable.Range(1, n).Select(i => (ulong)i << 40 | 7).ToArray());
        CompareRaw(Spec(MapType.PercpuHash, 4, 8, 2), 8 * n,
        [
            new(Op.Update, U32(5), values), new(Op.Lookup, U32(5)), new(Op.Update, U32(5), values, 1),
            new(Op.Update, U32(6), values, 2), new(Op.Update, U32(6), values), new(Op.Update, U32(7), values),
            new(Op.Delete, U32(5)), new(Op.Lookup, U32(5)), new(Op.Lookup, U32(6)),
        ]);
    }

    /// <summary>Compare with user values of <paramref name="userValueSize"/> bytes (per-CPU maps).</summary>
    private static void CompareRaw(MapSpec spec, int userValueSize, IEnumerable<Step> steps)
    {
        RequireKernel();
        var fd = KernelCreate(spec);
        Assert.True(fd >= 0, $"kernel refused {spec.Type}: {Errno.Name(-fd)}");
        using var map = MapFactory.Create(spec);
        try
        {
            var index = 0;
            foreach (var step in steps)
            {
                var kernelOut = new byte[userValueSize];
                var managedOut = new byte[userValueSize];
                var (kernel, managed) = step.Op switch
                {
                    Op.Update => (KernelElem(2, fd, step.Key, step.Value, step.Flags),
                        Managed(() => map.Update(step.Key, step.Value, (MapUpdateFlags)step.Flags))),
                    Op.Lookup => (KernelElem(1, fd, step.Key, kernelOut, 0),
                        Managed(() => { if (!map.TryLookup(step.Key, managedOut)) throw new MapException("", "", Errno.ENOENT); })),
                    _ => (KernelElem(3, fd, step.Key, null, 0),
                        Managed(() => { if (!map.Delete(step.Key)) throw new MapException("", "", Errno.ENOENT); })),
                };
                var where = $"{spec.Type} step {index} {step.Op}";
                Assert.True(kernel == managed, $"{where}: kernel {Errno.Name(kernel)}, managed {Errno.Name(managed)}");
                if (kernel == 0 && step.Op == Op.Lookup)
                    Assert.True(kernelOut.AsSpan().SequenceEqual(managedOut), $"{where}: kernel {Hex(kernelOut)}, managed {Hex(managedOut)}");
                index++;
            }
        }
        finally
        {
            close(fd);
        }
    }

    [Fact]
    public void MapInMapSpecsWithInnerTemplates()
    {
        RequireKernel();
        var inner = Spec(MapType.Hash, 4, 8, 16);
        var innerFd = KernelCreate(inner);
        Assert.True(innerFd >= 0);
        try
        {
            var outer = Spec(MapType.ArrayOfMaps, 4, 4, 4);
            outer.InnerMap = inner;
            Compare(outer, [new(Op.Lookup, U32(0)), new(Op.Delete, U32(0)), new(Op.Delete, U32(9)), new(Op.NextKey, U32(3))], innerFd);
            var hashOuter = Spec(MapType.HashOfMaps, 8, 4, 4);
            hashOuter.InnerMap = inner;
            Compare(hashOuter, [new(Op.Lookup, U64(0)), new(Op.Delete, U64(0)), new(Op.NextKey, null)], innerFd);
        }
        finally
        {
            close(innerFd);
        }
    }

    [Fact]
    public void PerfEventArrayOperationsWithoutEvents() => Compare(Spec(MapType.PerfEventArray, 4, 4, 4),
    [
        new(Op.Lookup, U32(0)), new(Op.Delete, U32(0)), new(Op.Delete, U32(4)), new(Op.NextKey, U32(3)), new(Op.NextKey, U32(1)),
    ]);

    [Fact]
    public void ProgramArrayOperationsWithoutPrograms() => Compare(Spec(MapType.ProgArray, 4, 4, 4),
    [
        new(Op.Lookup, U32(0)), new(Op.Delete, U32(0)), new(Op.Delete, U32(4)), new(Op.NextKey, U32(3)),
    ]);
}
