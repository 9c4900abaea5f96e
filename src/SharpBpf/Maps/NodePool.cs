using System.Runtime.InteropServices;

namespace SharpBpf.Maps;

/// <summary>
/// Fixed-size nodes in unmanaged memory for the hash-based maps. Nodes never move. A node taken out of a map is
/// retired, not freed: programs may still hold pointers into it during the current run, so it only becomes
/// reusable at <see cref="Reclaim"/>, which the owner calls when no program runs (see ManagedMap.Reclaim).
/// Not thread-safe: the owning map calls it under its writer lock.
/// </summary>
internal sealed unsafe class NodePool : IDisposable
{
    private const int MaxChunkNodes = 4096;

    private readonly int _nodeSize;
    private readonly List<nint> _chunks = [];
    private readonly Stack<nint> _free = new();
    private readonly List<(nint Node, long Epoch)> _retired = [];
    private byte* _bump;
    private int _bumpLeft;
    private int _nextChunkNodes = 16;

    public NodePool(int nodeSize) => _nodeSize = (nodeSize + 15) & ~15;

    /// <summary>Nodes retired and not yet reclaimed.</summary>
    public int RetiredCount => _retired.Count;

    /// <summary>A zeroed node.</summary>
    public byte* Rent()
    {
        byte* node;
        if (_free.TryPop(out var reused))
        {
            node = (byte*)reused;
        }
        else
        {
            if (_bumpLeft == 0)
            {
                var nodes = _nextChunkNodes;
                _nextChunkNodes = Math.Min(MaxChunkNodes, nodes * 2);
                _bump = (byte*)NativeMemory.AlignedAlloc((nuint)((long)nodes * _nodeSize), 64);
                _chunks.Add((nint)_bump);
                _bumpLeft = nodes;
            }
            node = _bump;
            _bump += _nodeSize;
            _bumpLeft--;
        }
        NativeMemory.Clear(node, (nuint)_nodeSize);
        return node;
    }

    /// <summary>Gives back a node no reader ever saw (it was never published).</summary>
    public void Return(byte* node) => _free.Push((nint)node);

    /// <summary>A node unlinked from a live structure: readers may still be on it.</summary>
    public void Retire(byte* node) => _retired.Add(((nint)node, ProgramRuns.Retire()));

    public void Reclaim()
    {
        foreach (var (node, _) in _retired)
            _free.Push(node);
        _retired.Clear();
    }

    /// <summary>Reuses nodes retired at or before <paramref name="oldestActive"/>, the start epoch of the oldest run
    /// in progress: no run can reach them any more.</summary>
    public void ReclaimBefore(long oldestActive)
    {
        // Epochs grow with the list, so the reusable nodes are a prefix of it.
        var count = 0;
        while (count < _retired.Count && _retired[count].Epoch <= oldestActive)
            _free.Push(_retired[count++].Node);
        _retired.RemoveRange(0, count);
    }

    public void Dispose()
    {
        foreach (var chunk in _chunks)
            NativeMemory.AlignedFree((void*)chunk);
        _chunks.Clear();
        _free.Clear();
        _retired.Clear();
        _bumpLeft = 0;
    }
}
