namespace SharpBpf.Maps;

/// <summary>
/// Epoch-based reclamation for engines that run programs on several threads at once, where there is never a
/// moment to call <see cref="ManagedMap.Reclaim"/> safely. A run that may hold pointers into map values is
/// bracketed by <see cref="Enter"/> and <see cref="Exit"/>; <see cref="ManagedMap.ReclaimUnreachable"/> then
/// reuses only memory retired before every run still in progress began.
/// <para>Why it is safe: an element is unlinked first and retired with a fresh epoch after; a run that began at
/// an epoch at or after that one started after the unlink and can never reach the element; a run that began
/// before it still counts as active and holds the memory back.</para>
/// <para>Cost: a compare-and-swap on entry and a store on exit. Single-threaded engines can skip this and call
/// <see cref="ManagedMap.Reclaim"/> between runs instead.</para>
/// </summary>
public static class ProgramRuns
{
    private const int Slots = 1024;

    private static long s_epoch = 1;
    private static readonly long[] s_active = new long[Slots * 8]; // one slot per cache line (every 8th long)
    private static int s_overflow;

    /// <summary>Marks the start of a program run; dispose the token (or call <see cref="Exit"/>) when it ends.</summary>
    public static RunToken Enter()
    {
        var epoch = Volatile.Read(ref s_epoch);
        var start = Environment.CurrentManagedThreadId % Slots;
        for (var i = 0; i < Slots; i++)
        {
            var slot = (start + i) % Slots * 8;
            if (Interlocked.CompareExchange(ref s_active[slot], epoch, 0) == 0)
                return new RunToken(slot);
        }
        // More than 1024 runs at once: hold back all reclamation until this one ends.
        Interlocked.Increment(ref s_overflow);
        return new RunToken(-1);
    }

    /// <summary>Marks the end of a run started with <see cref="Enter"/>.</summary>
    public static void Exit(RunToken token)
    {
        if (token.Slot < 0)
            Interlocked.Decrement(ref s_overflow);
        else
            Volatile.Write(ref s_active[token.Slot], 0);
    }

    /// <summary>A fresh epoch for an element just unlinked.</summary>
    internal static long Retire() => Interlocked.Increment(ref s_epoch);

    /// <summary>The start epoch of the oldest run in progress, or long.MaxValue when none is.</summary>
    internal static long OldestActive()
    {
        if (Volatile.Read(ref s_overflow) > 0)
            return 0;
        var oldest = long.MaxValue;
        for (var i = 0; i < Slots; i++)
        {
            var epoch = Volatile.Read(ref s_active[i * 8]);
            if (epoch != 0 && epoch < oldest)
                oldest = epoch;
        }
        return oldest;
    }
}

/// <summary>A program run in progress (see <see cref="ProgramRuns"/>).</summary>
public readonly struct RunToken : IDisposable
{
    internal RunToken(int slot) => Slot = slot;

    internal int Slot { get; }

    public void Dispose() => ProgramRuns.Exit(this);
}
