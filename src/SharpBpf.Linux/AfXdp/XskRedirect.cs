using System.Reflection;
using SharpBpf.Linux.Links;
using SharpBpf.Objects;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// The default program behind AF_XDP sockets (<c>programs/xsk_redirect.c</c>): a frame arriving on queue N goes
/// to the socket in slot N of its XSKMAP, and to the kernel stack when the slot is empty. Load it, put sockets in
/// with <see cref="Register"/>, attach it to the interface; dispose detaches it and frees program and map.
/// </summary>
public sealed class XskRedirect : IDisposable
{
    /// <summary>Name of the XSKMAP in the object.</summary>
    public const string MapName = "xsks_map";
    /// <summary>Name of the program in the object.</summary>
    public const string ProgramName = "xsk_redirect";

    private XdpAttachment? _attachment;

    private XskRedirect(BpfCollection collection)
    {
        Collection = collection;
        Program = collection.Program(ProgramName);
        Map = collection.Map(MapName);
    }

    public BpfCollection Collection { get; }
    public BpfProgram Program { get; }
    /// <summary>The XSKMAP: key = queue id, value = socket fd.</summary>
    public BpfMap Map { get; }
    /// <summary>Where the program is attached, or null.</summary>
    public XdpAttachment? Attachment => _attachment;

    /// <summary>The object as a spec (embedded in this assembly).</summary>
    public static CollectionSpec LoadSpec()
    {
        using var stream = typeof(XskRedirect).Assembly.GetManifestResourceStream("SharpBpf.Linux.AfXdp.xsk_redirect.o")
            ?? throw new System.Diagnostics.UnreachableException("xsk_redirect.o is not embedded in SharpBpf.Linux");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return ObjectFile.Read(buffer.ToArray(), "xsk_redirect");
    }

    /// <summary>Loads program and map into the kernel.</summary>
    public static XskRedirect Load() => new(BpfCollection.Load(LoadSpec()));

    /// <summary>Puts <paramref name="socket"/> at its queue's slot, so that queue's frames go to it.</summary>
    public void Register(XskSocket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Map.Update(socket.QueueId, (uint)socket.Handle.Value);
    }

    /// <summary>Empties a queue's slot: its frames go to the kernel stack again.</summary>
    public bool Unregister(uint queueId) => Map.Delete(queueId);

    /// <summary>Attaches the program to <paramref name="ifIndex"/> (native mode by default: veth and most drivers have it).</summary>
    public XdpAttachment Attach(int ifIndex, XdpAttachMode mode = XdpAttachMode.Native)
    {
        if (_attachment is not null)
            throw new InvalidOperationException($"{ProgramName} is attached already (ifindex {_attachment.IfIndex})");
        _attachment = XdpHook.Attach(ifIndex, Program, new XdpAttachOptions { Mode = mode });
        return _attachment;
    }

    public void Dispose()
    {
        try
        {
            _attachment?.Dispose();
        }
        finally
        {
            Collection.Dispose();
        }
    }
}
