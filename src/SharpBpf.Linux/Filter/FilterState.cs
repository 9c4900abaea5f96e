using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Filter;

/// <summary>What the filter does with a packet that no rule decides.</summary>
public enum FilterPolicy
{
    Allow,
    Deny,
}

/// <summary>A rule as the filter holds it, with the packets and bytes it matched (summed over CPUs).</summary>
public sealed record FilterRuleStatus(int Id, FilterRule Rule, ulong Packets, ulong Bytes);

/// <summary>Packets and bytes the filter returned one action for.</summary>
public readonly record struct FilterCounter(ulong Packets, ulong Bytes);

/// <summary>The filter's per-action counters, summed over CPUs, at one moment.</summary>
public sealed record FilterStatistics(IReadOnlyDictionary<XdpAction, FilterCounter> Actions, DateTimeOffset Time)
{
    public FilterCounter Dropped => Actions.GetValueOrDefault(XdpAction.Drop);
    public FilterCounter Passed => Actions.GetValueOrDefault(XdpAction.Pass);
    public FilterCounter Aborted => Actions.GetValueOrDefault(XdpAction.Aborted);
    public ulong TotalPackets => Actions.Values.Aggregate(0UL, (sum, c) => sum + c.Packets);
}

/// <summary>
/// The rules, policy and counters of an xdp_filter program, read and written through its maps (layouts in
/// programs/include/xdp_filter.h and docs/filter.md). Works the same over the kernel's pinned maps and over the
/// maps of a filter loaded in the managed VM. Every change checks first and rolls back on failure, so a refused
/// rule leaves the maps as they were.
/// </summary>
public sealed class FilterState
{
    public const string ConfigMap = "filter_config";
    public const string SourceV4Map = "filter_src_v4";
    public const string DestinationV4Map = "filter_dst_v4";
    public const string SourceV6Map = "filter_src_v6";
    public const string DestinationV6Map = "filter_dst_v6";
    public const string PortsMap = "filter_ports";
    public const string MacsMap = "filter_macs";
    public const string ProtocolsMap = "filter_protos";
    public const string HitsMap = "filter_hits";
    public const string StatsMap = "filter_stats";

    /// <summary>The program's name in programs/xdp_filter.o.</summary>
    public const string ProgramName = "xdp_filter";

    /// <summary>Rule ids run from 1 to MaxRules - 1 (they index filter_hits).</summary>
    public const int MaxRules = 16384;

    /// <summary>Every map of the filter; all are pinned by name.</summary>
    public static IReadOnlyList<string> MapNames { get; } =
    [
        ConfigMap, SourceV4Map, DestinationV4Map, SourceV6Map, DestinationV6Map, PortsMap, MacsMap, ProtocolsMap,
        HitsMap, StatsMap,
    ];

    private static readonly string[] RuleMaps =
        [SourceV4Map, DestinationV4Map, SourceV6Map, DestinationV6Map, PortsMap, MacsMap, ProtocolsMap];

    private const byte Tcp = 6, Udp = 17;
    private const int CounterSize = 16, RuleValueSize = 8;

    private readonly Func<string, IFilterMap> maps;
    private readonly Lock gate = new();

    /// <param name="maps">Gives the filter's map of each name in <see cref="MapNames"/>.</param>
    public FilterState(Func<string, IFilterMap> maps)
    {
        ArgumentNullException.ThrowIfNull(maps);
        this.maps = maps;
    }

    /// <summary>The default policy (filter_config). A fresh filter allows.</summary>
    public FilterPolicy Policy
    {
        get
        {
            Span<byte> value = stackalloc byte[8];
            return maps(ConfigMap).TryLookup(stackalloc byte[4], value) && BinaryPrimitives.ReadUInt32LittleEndian(value) == (uint)XdpAction.Drop
                ? FilterPolicy.Deny
                : FilterPolicy.Allow;
        }
        set
        {
            Span<byte> config = stackalloc byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(config, (uint)(value == FilterPolicy.Deny ? XdpAction.Drop : XdpAction.Pass));
            maps(ConfigMap).Update(stackalloc byte[4], config);
        }
    }

    /// <summary>Adds a rule and returns its id. Adding a rule that is already there returns its id again; a rule
    /// that overlaps another one (same match, other action or other sides) is refused.</summary>
    public int Add(FilterRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        return AddRange([rule])[0];
    }

    /// <summary>Adds rules in order and returns their ids; reads the maps once, so it suits thousands of rules. Stops
    /// at the first rule refused (the rules before it stay added).</summary>
    public IReadOnlyList<int> AddRange(IEnumerable<FilterRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        lock (gate)
        {
            var snapshot = Scan();
            var ids = new List<int>();
            uint nextId = 1;
            foreach (var rule in rules)
            {
                ArgumentNullException.ThrowIfNull(rule);
                var entries = Entries(rule);
                // Exact keys only: a lookup in an LPM trie would answer with the longest prefix that covers the key.
                var existing = entries.Where(snapshot.ContainsKey).Select(e => snapshot[e]).ToList();
                if (existing.Count > 0)
                {
                    var existingIds = existing.Select(v => v.Id).Distinct().ToList();
                    var current = Rebuild(snapshot.Where(p => existingIds.Contains(p.Value.Id))).ToList();
                    if (existing.Count == entries.Count && current.Count == 1 && current[0].Rule == rule)
                    {
                        ids.Add(current[0].Id);
                        continue;
                    }
                    throw new FilterRuleException(
                        $"'{rule}' overlaps {string.Join(", ", current.Select(c => $"rule #{c.Id} '{c.Rule}'"))}: remove it first");
                }

                var used = snapshot.Values.Select(v => v.Id).ToHashSet();
                while (used.Contains(nextId))
                    nextId++;
                if (nextId >= MaxRules)
                    throw new FilterRuleException($"cannot add '{rule}': the filter already holds {MaxRules - 1} rules, as many as it can");
                var id = (int)nextId;
                ResetHits(id);
                var written = new List<MapEntry>();
                try
                {
                    foreach (var entry in entries)
                    {
                        Write(entry, id, rule.Action);
                        written.Add(entry);
                        snapshot[entry] = new RuleValue((uint)id, rule.Action);
                    }
                }
                catch (BpfException e)
                {
                    foreach (var entry in written)
                        Erase(entry);
                    throw new FilterRuleException($"cannot add '{rule}': {e.Message}", e);
                }
                ids.Add(id);
            }
            return ids;
        }
    }

    /// <summary>Removes the rule that matches exactly this (action aside) and returns its id; throws when there is none.</summary>
    public int Remove(FilterRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        lock (gate)
        {
            var snapshot = Scan();
            var entries = Entries(rule);
            var found = entries.Where(snapshot.ContainsKey).ToList();
            if (found.Count == 0)
                throw new FilterRuleException($"no rule matches '{rule.Match}'");
            var ids = found.Select(e => snapshot[e].Id).Distinct().ToList();
            if (ids.Count > 1 || found.Count != entries.Count || snapshot.Values.Count(v => v.Id == ids[0]) != found.Count)
            {
                var current = Rebuild(snapshot.Where(p => ids.Contains(p.Value.Id)));
                throw new FilterRuleException(
                    $"'{rule.Match}' is only part of {string.Join(", ", current.Select(c => $"rule #{c.Id} '{c.Rule}'"))}: remove that rule as it was added");
            }
            foreach (var entry in found)
                Erase(entry);
            return (int)ids[0];
        }
    }

    /// <summary>Removes every map entry of rule <paramref name="id"/>; false when there was none.</summary>
    public bool RemoveById(int id)
    {
        lock (gate)
        {
            var entries = AllEntries().Where(e => e.Value.Id == id).Select(e => e.Entry).ToList();
            foreach (var entry in entries)
                Erase(entry);
            return entries.Count > 0;
        }
    }

    /// <summary>Removes every rule.</summary>
    public void Clear()
    {
        lock (gate)
        {
            foreach (var (entry, _) in AllEntries().ToList())
                Erase(entry);
        }
    }

    /// <summary>The rules, ordered by id, with their hit counters.</summary>
    public IReadOnlyList<FilterRuleStatus> List() => [.. Rebuild(AllEntries().Select(e => KeyValuePair.Create(e.Entry, e.Value)))];

    /// <summary>Packets and bytes per returned action, summed over CPUs.</summary>
    public FilterStatistics ReadStatistics()
    {
        var map = maps(StatsMap);
        var actions = new Dictionary<XdpAction, FilterCounter>();
        var value = new byte[map.UserValueSize];
        Span<byte> key = stackalloc byte[4];
        for (uint action = 0; action <= (uint)XdpAction.Redirect; action++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(key, action);
            actions[(XdpAction)action] = map.TryLookup(key, value) ? Sum(value) : default;
        }
        return new FilterStatistics(actions, DateTimeOffset.UtcNow);
    }

    /// <summary>Sets every counter (per action and per rule) back to zero.</summary>
    public void ResetCounters()
    {
        lock (gate)
        {
            var stats = maps(StatsMap);
            var zero = new byte[stats.UserValueSize];
            Span<byte> key = stackalloc byte[4];
            for (uint action = 0; action <= (uint)XdpAction.Redirect; action++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(key, action);
                stats.Update(key, zero);
            }
            foreach (var id in AllEntries().Select(e => e.Value.Id).Distinct())
                ResetHits(id);
        }
    }

    // ---- map entries --------------------------------------------------------------------------------------------

    /// <summary>One key of one map. Equal when map and key bytes are equal.</summary>
    private readonly record struct MapEntry(string Map, byte[] Key)
    {
        public bool Equals(MapEntry other) => Map == other.Map && Key.AsSpan().SequenceEqual(other.Key);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.Add(Map);
            hash.AddBytes(Key);
            return hash.ToHashCode();
        }
    }

    private readonly record struct RuleValue(uint Id, FilterAction Action);

    /// <summary>The map entries that make up a rule (one for each side and transport it covers).</summary>
    private static List<MapEntry> Entries(FilterRule rule)
    {
        var entries = new List<MapEntry>();
        switch (rule.Kind)
        {
            case FilterRuleKind.Ip:
                var prefix = rule.Prefix!.Value;
                var v6 = prefix.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6;
                var address = prefix.BaseAddress.GetAddressBytes();
                var key = new byte[4 + address.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)prefix.PrefixLength);
                address.CopyTo(key, 4);
                if (rule.Direction.HasFlag(FilterDirection.Source))
                    entries.Add(new MapEntry(v6 ? SourceV6Map : SourceV4Map, key));
                if (rule.Direction.HasFlag(FilterDirection.Destination))
                    entries.Add(new MapEntry(v6 ? DestinationV6Map : DestinationV4Map, key));
                break;
            case FilterRuleKind.Port:
                foreach (var (transport, protocol) in new[] { (FilterTransport.Tcp, Tcp), (FilterTransport.Udp, Udp) })
                {
                    if (!rule.Transports.HasFlag(transport))
                        continue;
                    foreach (var (direction, side) in new[] { (FilterDirection.Source, (byte)0), (FilterDirection.Destination, (byte)1) })
                    {
                        if (!rule.Direction.HasFlag(direction))
                            continue;
                        var portKey = new byte[4];
                        BinaryPrimitives.WriteUInt16LittleEndian(portKey, (ushort)rule.PortNumber);
                        portKey[2] = protocol;
                        portKey[3] = side;
                        entries.Add(new MapEntry(PortsMap, portKey));
                    }
                }
                break;
            case FilterRuleKind.Mac:
                foreach (var (direction, side) in new[] { (FilterDirection.Source, (byte)0), (FilterDirection.Destination, (byte)1) })
                {
                    if (!rule.Direction.HasFlag(direction))
                        continue;
                    var macKey = new byte[8];
                    rule.MacAddress!.GetAddressBytes().CopyTo(macKey, 0);
                    macKey[6] = side;
                    entries.Add(new MapEntry(MacsMap, macKey));
                }
                break;
            case FilterRuleKind.Protocol:
                var protocolKey = new byte[4];
                protocolKey[0] = rule.ProtocolNumber;
                entries.Add(new MapEntry(ProtocolsMap, protocolKey));
                break;
        }
        return entries;
    }

    private RuleValue? Read(MapEntry entry)
    {
        Span<byte> value = stackalloc byte[RuleValueSize];
        if (!maps(entry.Map).TryLookup(entry.Key, value))
            return null;
        var id = BinaryPrimitives.ReadUInt32LittleEndian(value);
        // filter_protos is an array: every slot exists, id 0 marks an empty one.
        return id == 0 ? null : new RuleValue(id, (FilterAction)BinaryPrimitives.ReadUInt32LittleEndian(value[4..]));
    }

    private void Write(MapEntry entry, int id, FilterAction action)
    {
        Span<byte> value = stackalloc byte[RuleValueSize];
        BinaryPrimitives.WriteUInt32LittleEndian(value, (uint)id);
        BinaryPrimitives.WriteUInt32LittleEndian(value[4..], (uint)action);
        maps(entry.Map).Update(entry.Key, value);
    }

    private void Erase(MapEntry entry)
    {
        if (entry.Map == ProtocolsMap)
            maps(entry.Map).Update(entry.Key, stackalloc byte[RuleValueSize]);
        else
            maps(entry.Map).Delete(entry.Key);
    }

    private IEnumerable<(MapEntry Entry, RuleValue Value)> AllEntries()
    {
        foreach (var name in RuleMaps)
        {
            var map = maps(name);
            var keys = new List<byte[]>();
            var key = Array.Empty<byte>();
            var next = new byte[map.KeySize];
            // Collect the keys first: walking a map while changing it may skip or repeat keys.
            while (map.TryGetNextKey(key, next) && keys.Count <= MaxRules * 4)
            {
                key = (byte[])next.Clone();
                keys.Add(key);
            }
            foreach (var k in keys)
            {
                var entry = new MapEntry(name, k);
                if (Read(entry) is { } value)
                    yield return (entry, value);
            }
        }
    }

    /// <summary>Every rule entry of every rule map, by exact key.</summary>
    private Dictionary<MapEntry, RuleValue> Scan() => AllEntries().ToDictionary(e => e.Entry, e => e.Value);

    /// <summary>Rules (with their hits) from map entries grouped by rule id.</summary>
    private IEnumerable<FilterRuleStatus> Rebuild(IEnumerable<KeyValuePair<MapEntry, RuleValue>> entries)
    {
        foreach (var group in entries.GroupBy(e => (e.Value.Id, e.Value.Action, Kind: KindOf(e.Key.Map))).OrderBy(g => g.Key.Id))
        {
            var (packets, bytes) = Hits(group.Key.Id);
            foreach (var rule in Rebuild(group.Key.Kind, group.Key.Action, group.Select(g => g.Key)))
                yield return new FilterRuleStatus((int)group.Key.Id, rule, packets, bytes);
        }
    }

    private void ResetHits(uint id) => ResetHits((int)id);

    private void ResetHits(int id)
    {
        var map = maps(HitsMap);
        Span<byte> key = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)id);
        map.Update(key, new byte[map.UserValueSize]);
    }

    private (ulong Packets, ulong Bytes) Hits(uint id)
    {
        var map = maps(HitsMap);
        var value = new byte[map.UserValueSize];
        Span<byte> key = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(key, id);
        var sum = map.TryLookup(key, value) ? Sum(value) : default;
        return (sum.Packets, sum.Bytes);
    }

    /// <summary>Sums a per-CPU struct filter_counter value (one 16-byte counter a CPU).</summary>
    private static FilterCounter Sum(ReadOnlySpan<byte> perCpu)
    {
        ulong packets = 0, bytes = 0;
        for (var offset = 0; offset + CounterSize <= perCpu.Length; offset += CounterSize)
        {
            packets += BinaryPrimitives.ReadUInt64LittleEndian(perCpu[offset..]);
            bytes += BinaryPrimitives.ReadUInt64LittleEndian(perCpu[(offset + 8)..]);
        }
        return new FilterCounter(packets, bytes);
    }

    private static FilterRuleKind KindOf(string map) => map switch
    {
        SourceV4Map or DestinationV4Map or SourceV6Map or DestinationV6Map => FilterRuleKind.Ip,
        PortsMap => FilterRuleKind.Port,
        MacsMap => FilterRuleKind.Mac,
        _ => FilterRuleKind.Protocol,
    };

    /// <summary>Turns the map entries of one rule id back into rules (one, unless another tool wrote odd entries).</summary>
    private static IEnumerable<FilterRule> Rebuild(FilterRuleKind kind, FilterAction action, IEnumerable<MapEntry> entries)
    {
        switch (kind)
        {
            case FilterRuleKind.Ip:
                foreach (var prefix in entries.GroupBy(e => Convert.ToHexString(e.Key)))
                {
                    var key = prefix.First().Key;
                    var network = new IPNetwork(new IPAddress(key.AsSpan(4)), (int)BinaryPrimitives.ReadUInt32LittleEndian(key));
                    var direction = prefix.Aggregate((FilterDirection)0, (d, e) =>
                        d | (e.Map is SourceV4Map or SourceV6Map ? FilterDirection.Source : FilterDirection.Destination));
                    yield return FilterRule.Ip(network, direction, action);
                }
                break;
            case FilterRuleKind.Port:
                foreach (var port in entries.GroupBy(e => BinaryPrimitives.ReadUInt16LittleEndian(e.Key)))
                {
                    var transports = port.Aggregate((FilterTransport)0, (t, e) => t | (e.Key[2] == Tcp ? FilterTransport.Tcp : FilterTransport.Udp));
                    var direction = port.Aggregate((FilterDirection)0, (d, e) => d | (e.Key[3] == 0 ? FilterDirection.Source : FilterDirection.Destination));
                    yield return FilterRule.Port(port.Key, transports, direction, action);
                }
                break;
            case FilterRuleKind.Mac:
                foreach (var mac in entries.GroupBy(e => Convert.ToHexString(e.Key, 0, 6)))
                {
                    var direction = mac.Aggregate((FilterDirection)0, (d, e) => d | (e.Key[6] == 0 ? FilterDirection.Source : FilterDirection.Destination));
                    yield return FilterRule.Mac(FilterRule.FormatMac(new PhysicalAddress(mac.First().Key[..6])), direction, action);
                }
                break;
            default:
                foreach (var entry in entries)
                    yield return FilterRule.Protocol(entry.Key[0], action);
                break;
        }
    }
}
