using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Bench;

/// <summary>Program-face hash lookup (what bpf_map_lookup_elem costs in the VM) against Dictionary in the same
/// run: 1024 lookups over 64k u32 keys, all hits.</summary>
[MemoryDiagnoser]
public unsafe class MapsHashLookup
{
    private ManagedMap _map = null!;
    private readonly Dictionary<uint, ulong> _reference = [];
    private uint[] _probes = null!;

    [GlobalSetup]
    public void Setup()
    {
        _map = MapFactory.Create(new MapSpec { Name = "h", Type = MapType.Hash, KeySize = 4, ValueSize = 8, MaxEntries = 65536 });
        var random = new Random(1);
        var keys = Enumerable.Range(0, 65536).Select(_ => (uint)random.Next()).Distinct().ToArray();
        foreach (var k in keys)
        {
            _map.Update(k, (ulong)k);
            _reference[k] = k;
        }
        _probes = Enumerable.Range(0, 1024).Select(_ => keys[random.Next(keys.Length)]).ToArray();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = 1024)]
    public ulong Dictionary()
    {
        ulong sum = 0;
        foreach (var k in _probes)
            sum += _reference[k];
        return sum;
    }

    [Benchmark(OperationsPerInvoke = 1024)]
    public ulong HashMap()
    {
        ulong sum = 0;
        foreach (var k in _probes)
        {
            var key = k;
            sum += *(ulong*)_map.LookupForProgram((byte*)&key, 0);
        }
        return sum;
    }

    [GlobalCleanup]
    public void Cleanup() => _map.Dispose();
}

/// <summary>Program-face array lookup against indexing a plain array.</summary>
public unsafe class MapsArrayLookup
{
    private ManagedMap _map = null!;
    private ulong[] _reference = null!;
    private uint[] _probes = null!;

    [GlobalSetup]
    public void Setup()
    {
        _map = MapFactory.Create(new MapSpec { Name = "a", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 4096 });
        _reference = new ulong[4096];
        for (uint i = 0; i < 4096; i++)
        {
            _map.Update(i, (ulong)i);
            _reference[i] = i;
        }
        var random = new Random(2);
        _probes = Enumerable.Range(0, 1024).Select(_ => (uint)random.Next(4096)).ToArray();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = 1024)]
    public ulong PlainArray()
    {
        ulong sum = 0;
        foreach (var k in _probes)
            sum += _reference[k];
        return sum;
    }

    [Benchmark(OperationsPerInvoke = 1024)]
    public ulong ArrayMap()
    {
        ulong sum = 0;
        foreach (var k in _probes)
        {
            var key = k;
            sum += *(ulong*)_map.LookupForProgram((byte*)&key, 0);
        }
        return sum;
    }

    [GlobalCleanup]
    public void Cleanup() => _map.Dispose();
}

/// <summary>LPM trie lookup with 10k IPv4 prefixes (/8 to /32) against a reference that probes one Dictionary
/// per prefix length from the longest down.</summary>
public unsafe class MapsLpmLookup
{
    private ManagedMap _map = null!;
    private readonly Dictionary<uint, uint>[] _byLength = Enumerable.Range(0, 33).Select(_ => new Dictionary<uint, uint>()).ToArray();
    private byte[][] _probes = null!;
    private uint[] _probeAddresses = null!;

    [GlobalSetup]
    public void Setup()
    {
        _map = MapFactory.Create(new MapSpec
        {
            Name = "lpm", Type = MapType.LpmTrie, KeySize = 8, ValueSize = 4, MaxEntries = 20000, Flags = 1,
        });
        var random = new Random(3);
        var added = 0;
        while (added < 10000)
        {
            var length = random.Next(8, 33);
            var address = (uint)random.Next() & (uint.MaxValue << (32 - length));
            if (!_byLength[length].TryAdd(address, (uint)added))
                continue;
            var key = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)length);
            BinaryPrimitives.WriteUInt32BigEndian(key.AsSpan(4), address);
            _map.Update(key, BitConverter.GetBytes((uint)added));
            added++;
        }
        var prefixes = _byLength.SelectMany((d, len) => d.Keys.Select(a => (a, len))).ToArray();
        _probeAddresses = Enumerable.Range(0, 1024).Select(_ =>
        {
            var (a, len) = prefixes[random.Next(prefixes.Length)];
            return len == 32 ? a : a | ((uint)random.Next() & (uint.MaxValue >> len));
        }).ToArray();
        _probes = _probeAddresses.Select(a =>
        {
            var key = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(key, 32);
            BinaryPrimitives.WriteUInt32BigEndian(key.AsSpan(4), a);
            return key;
        }).ToArray();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = 1024)]
    public uint DictionaryPerLength()
    {
        uint sum = 0;
        foreach (var a in _probeAddresses)
        {
            for (var len = 32; len >= 0; len--)
            {
                var masked = len == 0 ? 0 : a & (uint.MaxValue << (32 - len));
                if (_byLength[len].TryGetValue(masked, out var v))
                {
                    sum += v;
                    break;
                }
            }
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = 1024)]
    public uint LpmTrie()
    {
        uint sum = 0;
        foreach (var key in _probes)
        {
            fixed (byte* k = key)
            {
                var v = _map.LookupForProgram(k, 0);
                if (v != null)
                    sum += *(uint*)v;
            }
        }
        return sum;
    }

    [GlobalCleanup]
    public void Cleanup() => _map.Dispose();
}
