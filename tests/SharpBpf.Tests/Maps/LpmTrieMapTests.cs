using System.Net;
using SharpBpf.Maps;
using SharpBpf.Platform;
using static SharpBpf.Tests.Maps.M;

namespace SharpBpf.Tests.Maps;

public unsafe class LpmTrieMapTests
{
    private static byte[] Key(string cidr)
    {
        var parts = cidr.Split('/');
        var address = IPAddress.Parse(parts[0]).GetAddressBytes();
        var prefix = parts.Length > 1 ? uint.Parse(parts[1]) : (uint)address.Length * 8;
        return [.. BitConverter.GetBytes(prefix), .. address];
    }

    private static ManagedMap Trie(uint dataBytes, uint max = 100) =>
        Create(MapType.LpmTrie, 4 + dataBytes, 4, max, flags: 1);

    private static uint? Match(ManagedMap map, string address)
    {
        var p = ProgLookup(map, Key(address));
        return p == null ? null : *(uint*)p;
    }

    [Fact]
    public void LongestPrefixWinsForIpv4()
    {
        using var map = Trie(4);
        map.Update(Key("192.168.0.0/16"), U32(16));
        map.Update(Key("192.168.1.0/24"), U32(24));
        map.Update(Key("192.168.1.128/25"), U32(25));
        map.Update(Key("0.0.0.0/0"), U32(0));
        map.Update(Key("10.1.2.3/32"), U32(32));
        Assert.Equal(25u, Match(map, "192.168.1.200"));
        Assert.Equal(24u, Match(map, "192.168.1.7"));
        Assert.Equal(16u, Match(map, "192.168.77.1"));
        Assert.Equal(0u, Match(map, "8.8.8.8"));
        Assert.Equal(32u, Match(map, "10.1.2.3"));
        Assert.Equal(0u, Match(map, "10.1.2.4"));
        // A lookup key's own prefixlen limits the match.
        Assert.Equal(16u, Match(map, "192.168.1.200/20"));
        var value = new byte[4];
        Assert.True(map.TryLookup(Key("192.168.1.129"), value));
        Assert.Equal(25u, BitConverter.ToUInt32(value));
        Assert.True(map.Delete(Key("0.0.0.0/0")));
        Assert.Null(Match(map, "8.8.8.8"));
        Assert.True(map.Delete(Key("192.168.1.0/24")));
        Assert.Equal(16u, Match(map, "192.168.1.7"));
        Assert.Equal(25u, Match(map, "192.168.1.200"));
    }

    [Fact]
    public void LongestPrefixWinsForIpv6()
    {
        using var map = Trie(16);
        map.Update(Key("2001:db8::/32"), U32(32));
        map.Update(Key("2001:db8:1::/48"), U32(48));
        map.Update(Key("2001:db8:1:2::/64"), U32(64));
        map.Update(Key("2001:db8:1:2::1/128"), U32(128));
        map.Update(Key("fe80::/10"), U32(10));
        Assert.Equal(128u, Match(map, "2001:db8:1:2::1"));
        Assert.Equal(64u, Match(map, "2001:db8:1:2::2"));
        Assert.Equal(48u, Match(map, "2001:db8:1:3::1"));
        Assert.Equal(32u, Match(map, "2001:db8:ffff::1"));
        Assert.Equal(10u, Match(map, "febf::1"));
        Assert.Null(Match(map, "fec0::1"));
        Assert.Null(Match(map, "2001:db9::1"));
    }

    [Fact]
    public void AgreesWithABruteForceMatcherOnRandomPrefixes()
    {
        var random = new Random(1234);
        using var map = Trie(4, 2000);
        var prefixes = new Dictionary<(uint, int), uint>();
        for (var i = 0; i < 1500; i++)
        {
            var length = random.Next(0, 33);
            var address = length == 0 ? 0 : (uint)random.Next() & (uint.MaxValue << (32 - length));
            var value = (uint)i;
            prefixes[(address, length)] = value;
            map.Update(Key($"{new IPAddress(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(address)))}/{length}"), U32(value));
        }
        // Delete a third of them again.
        foreach (var k in prefixes.Keys.Where((_, i) => i % 3 == 0).ToList())
        {
            Assert.True(map.Delete(Key($"{new IPAddress(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(k.Item1)))}/{k.Item2}")));
            prefixes.Remove(k);
        }
        Assert.Equal(prefixes.Count, ((LpmTrieMap)map).Count);
        for (var i = 0; i < 3000; i++)
        {
            var probe = (uint)random.Next() ^ ((uint)random.Next() << 1);
            if (i % 2 == 0 && prefixes.Count > 0)
                probe = prefixes.Keys.ElementAt(random.Next(prefixes.Count)).Item1 | ((uint)random.Next() & 0xff);
            uint? expected = null;
            var best = -1;
            foreach (var ((address, length), value) in prefixes)
            {
                var mask = length == 0 ? 0 : uint.MaxValue << (32 - length);
                if ((probe & mask) == address && length > best)
                {
                    best = length;
                    expected = value;
                }
            }
            var ip = new IPAddress(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(probe)));
            Assert.Equal(expected, Match(map, ip.ToString()));
        }
        Assert.Equal(prefixes.Count, map.Keys.Count());
    }

    [Fact]
    public void FlagsFullnessAndErrnos()
    {
        using var map = Trie(4, 2);
        map.Update(Key("10.0.0.0/8"), U32(1), MapUpdateFlags.NoExist);
        Assert.Equal(Errno.EEXIST, ThrowsErrno(() => map.Update(Key("10.0.0.0/8"), U32(2), MapUpdateFlags.NoExist)));
        Assert.Equal(Errno.ENOENT, ThrowsErrno(() => map.Update(Key("11.0.0.0/8"), U32(2), MapUpdateFlags.Exist)));
        // Only the first prefixlen bits count: 10.9.9.9/8 is the same prefix.
        map.Update(Key("10.9.9.9/8"), U32(3), MapUpdateFlags.Exist);
        Assert.Equal(3u, Match(map, "10.1.1.1"));
        map.Update(Key("10.1.0.0/16"), U32(4));
        Assert.Equal(Errno.ENOSPC, ThrowsErrno(() => map.Update(Key("12.0.0.0/8"), U32(5))));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update([.. U32(33), 1, 2, 3, 4], U32(5))));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => map.Update(Key("10.0.0.0/8"), U32(5), (MapUpdateFlags)4)));
        Assert.False(map.Delete(Key("10.0.0.0/9")));
        Assert.Equal(-Errno.EINVAL, ProgDelete(map, [.. U32(40), 1, 2, 3, 4]));
        Assert.Equal(-Errno.ENOENT, ProgDelete(map, Key("12.0.0.0/8")));
        Assert.Equal(0, ProgDelete(map, Key("10.0.0.0/8")));
        Assert.Equal(0, ProgUpdate(map, Key("12.0.0.0/8"), U32(6)));
        Assert.Equal(6u, Match(map, "12.3.4.5"));
    }

    [Fact]
    public void SpecChecks()
    {
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.LpmTrie, 8, 4, 10))); // no BPF_F_NO_PREALLOC
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.LpmTrie, 4, 4, 10, flags: 1)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.LpmTrie, 261, 4, 10, flags: 1)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.LpmTrie, 8, 0, 10, flags: 1)));
        Assert.Equal(Errno.EINVAL, ThrowsErrno(() => Create(MapType.LpmTrie, 8, 4, 0, flags: 1)));
        using var ok = Create(MapType.LpmTrie, 260, 1, 1, flags: 1);
    }

    [Fact]
    public void NextKeyWalksPostOrderAndStartsOverOnUnknownKeys()
    {
        using var map = Trie(4);
        map.Update(Key("192.168.0.0/16"), U32(1));
        map.Update(Key("192.168.0.0/24"), U32(2));
        map.Update(Key("192.168.1.0/24"), U32(3));
        map.Update(Key("192.168.128.0/24"), U32(4));
        var order = map.Keys.Select(k => $"{new IPAddress(k.AsSpan(4).ToArray())}/{BitConverter.ToUInt32(k)}").ToList();
        Assert.Equal(["192.168.0.0/24", "192.168.1.0/24", "192.168.128.0/24", "192.168.0.0/16"], order);
        var next = new byte[8];
        Assert.True(map.TryGetNextKey(Key("1.2.3.4/32"), next));
        Assert.Equal(Key("192.168.0.0/24"), next);
        Assert.False(map.TryGetNextKey(Key("192.168.0.0/16"), next));
    }

    [Fact]
    public void ReplacedValuesStayReadableForHoldersAndReadersSeeNoTornTrie()
    {
        using var map = Trie(4, 5000);
        map.Update(Key("10.0.0.0/8"), U32(1));
        var held = ProgLookup(map, Key("10.1.1.1"));
        map.Update(Key("10.0.0.0/8"), U32(2));
        Assert.Equal(1u, *(uint*)held);
        Assert.Equal(2u, Match(map, "10.1.1.1"));

        var stop = 0;
        var wrong = 0;
        var reader = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                // 10.0.0.0/8 is never touched by the writers: every probe must find it or something longer.
                var v = Match(map, "10.200.3.4");
                if (v is null)
                    Interlocked.Increment(ref wrong);
            }
        });
        reader.Start();
        Parallel.For(0, 3, t =>
        {
            for (var i = 0; i < 1000; i++)
            {
                var key = Key($"10.{t * 60 + i % 50}.{i % 200}.0/24");
                map.Update(key, U32((uint)i));
                if (i % 2 == 0)
                    map.Delete(key);
            }
        });
        Volatile.Write(ref stop, 1);
        reader.Join();
        Assert.Equal(0, wrong);
    }
}
