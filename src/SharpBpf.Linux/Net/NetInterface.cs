using System.Globalization;
using SharpBpf.Linux.Netlink;

namespace SharpBpf.Linux.Net;

/// <summary>A network interface as rtnetlink reports it.</summary>
/// <param name="Index">The ifindex (unique within its network namespace only).</param>
/// <param name="Name">The interface name, e.g. "eth0".</param>
/// <param name="IsUp">Administratively up (IFF_UP).</param>
/// <param name="Mtu">The MTU in bytes.</param>
/// <param name="Kind">The link kind for virtual devices ("veth", "bridge", ...), null for physical ones.</param>
/// <param name="MacAddress">The hardware address as aa:bb:cc:dd:ee:ff, null when the device has none.</param>
public sealed record NetInterface(int Index, string Name, bool IsUp, int Mtu, string? Kind, string? MacAddress)
{
    internal static NetInterface From(LinkMessage link) => new(
        link.Index,
        link.Name,
        (link.Flags & Rtnl.InterfaceUp) != 0,
        (int)link.Mtu,
        link.Kind,
        link.Address is { Length: > 0 } a ? string.Join(':', a.Select(b => b.ToString("x2", CultureInfo.InvariantCulture))) : null);
}

/// <summary>
/// Finds interfaces by name or index over rtnetlink, in the calling thread's network namespace or in the one
/// at a given path (/var/run/netns/NAME, /proc/PID/ns/net).
/// </summary>
public static class NetInterfaces
{
    /// <summary>The interface named <paramref name="name"/>, or null.</summary>
    public static NetInterface? Find(string name, string? netNsPath = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        using var client = RtNetlinkClient.Open(netNsPath);
        return client.GetLink(name) is { } link ? NetInterface.From(link) : null;
    }

    /// <summary>The interface with index <paramref name="index"/>, or null.</summary>
    public static NetInterface? Find(int index, string? netNsPath = null)
    {
        if (index <= 0)
            return null;
        using var client = RtNetlinkClient.Open(netNsPath);
        return client.GetLink(index) is { } link ? NetInterface.From(link) : null;
    }

    /// <summary>Every interface of the namespace, by index.</summary>
    public static IReadOnlyList<NetInterface> List(string? netNsPath = null)
    {
        using var client = RtNetlinkClient.Open(netNsPath);
        return client.ListLinks().Select(NetInterface.From).OrderBy(i => i.Index).ToList();
    }

    /// <summary>
    /// The interface a user named on a command line: a name, or a number taken as an ifindex when no interface
    /// has that name. Throws <see cref="BpfException"/> ("no interface named 'eth9'") when there is none.
    /// </summary>
    public static NetInterface Resolve(string nameOrIndex, string? netNsPath = null)
    {
        ArgumentNullException.ThrowIfNull(nameOrIndex);
        using var client = RtNetlinkClient.Open(netNsPath);
        return Resolve(client, nameOrIndex);
    }

    internal static NetInterface Resolve(RtNetlinkClient client, string nameOrIndex)
    {
        if (client.GetLink(nameOrIndex) is { } byName)
            return NetInterface.From(byName);
        if (int.TryParse(nameOrIndex, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index > 0)
            return client.GetLink(index) is { } byIndex ? NetInterface.From(byIndex) : throw new BpfException($"no interface with index {index}");
        throw new BpfException($"no interface named '{nameOrIndex}'");
    }

    internal static NetInterface Resolve(RtNetlinkClient client, int index) =>
        client.GetLink(index) is { } link ? NetInterface.From(link) : throw new BpfException($"no interface with index {index}");
}
