using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using SharpBpf.Objects;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_LPM_TRIE: longest-prefix match over keys <c>{ u32 prefixlen; u8 data[KeySize - 4]; }</c>
/// (prefixlen in host order, data in network order, bit 0 = most significant bit of data[0]).
/// <para>A path-compressed binary trie, as the kernel's: every node holds a prefix; a node whose prefix is only a
/// branching point is an intermediate node without a value. Readers take no lock: writers (under one lock)
/// build new nodes completely and publish them with one volatile store of a child pointer; values live in
/// unmanaged memory that is retired on delete or replacement and reused only after <see cref="Reclaim"/>.</para>
/// <para>Kernel semantics kept: the map must be created with BPF_F_NO_PREALLOC; key size 5 to 260; lookups match
/// at most the key's own prefixlen bits; update of an exact prefix honours NOEXIST/EXIST; a full trie is ENOSPC;
/// a prefixlen over the data size is EINVAL; get_next_key walks in post-order (more specific prefixes first),
/// starting over from the leftmost leaf when the key is absent.</para>
/// </summary>
public sealed unsafe class LpmTrieMap : ManagedMap
{
    private sealed class Node
    {
        public required int PrefixLength;
        public required byte[] Data;
        /// <summary>Data bytes 0-7 and 8-15 as big-endian words (zero-padded): most keys (IPv4, IPv6) compare
        /// in one or two XORs without touching <see cref="Data"/>.</summary>
        public ulong Head, Tail;
        public Node? Child0, Child1;
        /// <summary>Null for an intermediate node.</summary>
        public byte* Value;
        public bool IsIntermediate => Value == null;

        public ref Node? Child(int bit) => ref bit == 0 ? ref Child0 : ref Child1;
    }

    /// <summary>A key's data with its first 16 bytes as words.</summary>
    private readonly ref struct KeyData
    {
        public readonly ReadOnlySpan<byte> Bytes;
        public readonly ulong Head, Tail;

        public KeyData(ReadOnlySpan<byte> bytes)
        {
            Bytes = bytes;
            (Head, Tail) = Words(bytes);
        }

        public int Bit(int index) => index < 64 ? (int)(Head >> (63 - index)) & 1
            : index < 128 ? (int)(Tail >> (127 - index)) & 1
            : (Bytes[index >> 3] >> (7 - (index & 7))) & 1;
    }

    private static (ulong Head, ulong Tail) Words(ReadOnlySpan<byte> bytes)
    {
        Span<byte> padded = stackalloc byte[16];
        padded.Clear();
        bytes[..Math.Min(16, bytes.Length)].CopyTo(padded);
        return (BinaryPrimitives.ReadUInt64BigEndian(padded), BinaryPrimitives.ReadUInt64BigEndian(padded[8..]));
    }

    private static Node MakeNode(int prefix, ReadOnlySpan<byte> data, byte* value)
    {
        var (head, tail) = Words(data);
        return new Node { PrefixLength = prefix, Data = data.ToArray(), Head = head, Tail = tail, Value = value };
    }

    private readonly int _dataSize;
    private readonly int _maxPrefix;
    private readonly Lock _lock = new();
    private readonly NodePool _values;
    private Node? _root;
    private int _count;

    internal LpmTrieMap(MapSpec spec) : base(Validate(spec))
    {
        _dataSize = KeySize - 4;
        _maxPrefix = 8 * _dataSize;
        _values = new NodePool(Round8(ValueSize));
    }

    private static MapSpec Validate(MapSpec spec)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.Require(spec, (spec.Flags & (uint)MapCreateFlags.NoPrealloc) != 0, Errno.EINVAL,
            "an LPM trie must be created with BPF_F_NO_PREALLOC");
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NoPrealloc | MapCreateFlags.NumaNode) | MapFlagMasks.Access);
        SpecCheck.Require(spec, spec.KeySize is >= 5 and <= 260, Errno.EINVAL,
            $"key size must be 4 + 1..256 data bytes, got {spec.KeySize}");
        SpecCheck.Require(spec, spec.ValueSize >= 1 && spec.ValueSize <= SpecCheck.KmallocMax - 256 - 64, Errno.EINVAL,
            $"value size {spec.ValueSize} is out of range");
        return spec;
    }

    /// <summary>Number of prefixes stored (intermediate nodes not counted).</summary>
    public int Count => Volatile.Read(ref _count);

    // ---- bit helpers --------------------------------------------------------------------------------------------

    /// <summary>Leading bits on which the node's prefix and the key agree, at most min(node, key) prefixlen.</summary>
    private static int Match(Node node, in KeyData key, int keyPrefix)
    {
        var limit = Math.Min(node.PrefixLength, keyPrefix);
        var diff = node.Head ^ key.Head;
        if (diff != 0)
            return Math.Min(limit, BitOperations.LeadingZeroCount(diff));
        if (limit <= 64)
            return limit;
        diff = node.Tail ^ key.Tail;
        if (diff != 0)
            return Math.Min(limit, 64 + BitOperations.LeadingZeroCount(diff));
        var prefix = 128;
        for (var i = 16; prefix < limit; i++)
        {
            var b = (uint)(node.Data[i] ^ key.Bytes[i]);
            if (b != 0)
                return Math.Min(limit, prefix + BitOperations.LeadingZeroCount(b) - 24);
            prefix += 8;
        }
        return limit;
    }

    private static int Bit(byte[] data, int index) => (data[index >> 3] >> (7 - (index & 7))) & 1;

    // ---- lookup (lock-free) -------------------------------------------------------------------------------------

    private byte* Longest(ReadOnlySpan<byte> key)
    {
        var keyPrefix = (int)Math.Min(MemoryMarshal.Read<uint>(key), (uint)_maxPrefix);
        var data = new KeyData(key[4..]);
        byte* found = null;
        var node = Volatile.Read(ref _root);
        while (node != null)
        {
            var match = Match(node, data, keyPrefix);
            if (match == _maxPrefix)
            {
                if (!node.IsIntermediate)
                    found = node.Value;
                break;
            }
            if (match < node.PrefixLength)
                break;
            if (!node.IsIntermediate)
                found = node.Value;
            if (node.PrefixLength >= keyPrefix)
                break;
            node = Volatile.Read(ref node.Child(data.Bit(node.PrefixLength)));
        }
        return found;
    }

    public override byte* LookupForProgram(byte* key, int cpu) => Longest(new ReadOnlySpan<byte>(key, KeySize));

    // ---- update / delete (under the lock) -----------------------------------------------------------------------

    private int UpdateCore(ReadOnlySpan<byte> key, byte* value, ulong flags)
    {
        if (flags > (ulong)MapUpdateFlags.Exist)
            return -Errno.EINVAL;
        var prefixRaw = MemoryMarshal.Read<uint>(key);
        if (prefixRaw > (uint)_maxPrefix)
            return -Errno.EINVAL;
        var prefix = (int)prefixRaw;
        var data = new KeyData(key[4..]);
        lock (_lock)
        {
            ref var slot = ref _root;
            Node? node;
            var match = 0;
            while ((node = slot) != null)
            {
                match = Match(node, data, prefix);
                if (node.PrefixLength != match || node.PrefixLength == prefix || node.PrefixLength == _maxPrefix)
                    break;
                slot = ref node.Child(data.Bit(node.PrefixLength));
            }

            var exact = node != null && node.PrefixLength == match && node.PrefixLength == prefix;
            var existing = exact && !node!.IsIntermediate;
            if (existing && flags == (ulong)MapUpdateFlags.NoExist)
                return -Errno.EEXIST;
            if (!existing && flags == (ulong)MapUpdateFlags.Exist)
                return -Errno.ENOENT;
            if (!existing && _count >= MaxEntries)
                return -Errno.ENOSPC;

            var fresh = NewLeaf(prefix, data.Bytes, value);
            if (node == null)
            {
                Volatile.Write(ref slot, fresh);
            }
            else if (exact)
            {
                // Replace the node (leaf or intermediate) by a new one that keeps its children.
                fresh.Child0 = node.Child0;
                fresh.Child1 = node.Child1;
                Volatile.Write(ref slot, fresh);
                if (existing)
                    _values.Retire(node.Value);
            }
            else if (match == prefix)
            {
                // The new prefix contains the node's: it becomes the node's parent.
                fresh.Child(Bit(node.Data, match)) = node;
                Volatile.Write(ref slot, fresh);
            }
            else
            {
                // They diverge at bit `match`: an intermediate node branches between them.
                var branch = MakeNode(match, node.Data, null);
                branch.Child(Bit(node.Data, match)) = node;
                branch.Child(data.Bit(match)) = fresh;
                Volatile.Write(ref slot, branch);
            }
            if (!existing)
                _count++;
            return 0;
        }
    }

    private Node NewLeaf(int prefix, ReadOnlySpan<byte> data, byte* value)
    {
        var v = _values.Rent();
        Buffer.MemoryCopy(value, v, ValueSize, ValueSize);
        return MakeNode(prefix, data, v);
    }

    private int DeleteCore(ReadOnlySpan<byte> key)
    {
        var prefixRaw = MemoryMarshal.Read<uint>(key);
        if (prefixRaw > (uint)_maxPrefix)
            return -Errno.EINVAL;
        var prefix = (int)prefixRaw;
        var data = new KeyData(key[4..]);
        lock (_lock)
        {
            ref var slot = ref _root;
            ref var parentSlot = ref _root;
            Node? parent = null;
            Node? node;
            var match = 0;
            while ((node = slot) != null)
            {
                match = Match(node, data, prefix);
                if (node.PrefixLength != match || node.PrefixLength == prefix)
                    break;
                parent = node;
                parentSlot = ref slot;
                slot = ref node.Child(data.Bit(node.PrefixLength));
            }
            if (node == null || node.PrefixLength != prefix || match != prefix || node.IsIntermediate)
                return -Errno.ENOENT;

            _count--;
            _values.Retire(node.Value);
            var left = node.Child0;
            var right = node.Child1;
            if (left != null && right != null)
            {
                // Still a branching point: keep it as an intermediate node.
                var branch = MakeNode(node.PrefixLength, node.Data, null);
                branch.Child0 = left;
                branch.Child1 = right;
                Volatile.Write(ref slot, branch);
            }
            else if (left == null && right == null && parent is { IsIntermediate: true })
            {
                // The parent only branched to this leaf and its sibling: the sibling takes the parent's place.
                var sibling = ReferenceEquals(parent.Child0, node) ? parent.Child1 : parent.Child0;
                Volatile.Write(ref parentSlot, sibling);
            }
            else
            {
                Volatile.Write(ref slot, left ?? right);
            }
            return 0;
        }
    }

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) =>
        UpdateCore(new ReadOnlySpan<byte>(key, KeySize), value, flags);

    public override int DeleteFromProgram(byte* key) => DeleteCore(new ReadOnlySpan<byte>(key, KeySize));

    // ---- user face ----------------------------------------------------------------------------------------------

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanRead("lookup");
        var found = Longest(key);
        if (found == null)
            return false;
        new ReadOnlySpan<byte>(found, ValueSize).CopyTo(value);
        return true;
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        fixed (byte* v = value)
        {
            var status = UpdateCore(key, v, (ulong)flags);
            if (status != 0)
                throw Fail("update", -status);
        }
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("delete");
        var status = DeleteCore(key);
        if (status == -Errno.ENOENT)
            return false;
        if (status != 0)
            throw Fail("delete", -status);
        return true;
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        CheckNextKeyArgs(key, nextKey);
        List<Node> order = [];
        lock (_lock)
            PostOrder(_root, order);
        if (order.Count == 0)
            return false;
        var index = 0;
        if (!key.IsEmpty)
        {
            var prefix = MemoryMarshal.Read<uint>(key);
            for (var i = 0; i < order.Count; i++)
            {
                if (order[i].PrefixLength == prefix && SamePrefix(order[i], key[4..]))
                {
                    index = i + 1;
                    break;
                }
            }
        }
        if (index >= order.Count)
            return false;
        var next = order[index];
        var length = (uint)next.PrefixLength;
        MemoryMarshal.Write(nextKey, in length);
        next.Data.CopyTo(nextKey[4..]);
        return true;
    }

    private static bool SamePrefix(Node node, ReadOnlySpan<byte> data) =>
        Match(node, new KeyData(data), node.PrefixLength) == node.PrefixLength;

    private static void PostOrder(Node? node, List<Node> into)
    {
        if (node == null)
            return;
        PostOrder(node.Child0, into);
        PostOrder(node.Child1, into);
        if (!node.IsIntermediate)
            into.Add(node);
    }

    public override void Reclaim()
    {
        lock (_lock)
            _values.Reclaim();
    }

    private protected override void ReclaimBefore(long oldestActive)
    {
        lock (_lock)
            _values.ReclaimBefore(oldestActive);
    }

    protected override void Dispose(bool disposing) => _values?.Dispose();
}
