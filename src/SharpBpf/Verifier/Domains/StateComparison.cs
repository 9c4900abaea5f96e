namespace SharpBpf.Verifier.Domains;

/// <summary>
/// Whether one abstract state covers another: every concrete state the second allows, the first allows too, as far
/// as the rest of the program can observe (registers dead at the instruction are ignored). A path reaching a state
/// covered by one already proved safe is safe. With <c>exact</c>, scalars must match exactly (used to detect loops
/// that make no progress).
/// </summary>
internal static class StateComparison
{
    /// <summary>The id renaming found so far in one comparison (old id to current id and back): a few pairs,
    /// searched linearly, reused between comparisons so that none allocates.</summary>
    internal sealed class IdMap
    {
        private int[] _old = new int[16];
        private int[] _cur = new int[16];
        private int _count;
        private int _fresh;

        public void Clear()
        {
            _count = 0;
            _fresh = 0;
        }

        /// <summary>An id no state uses (real ids are positive): stands for "no id" on one side of a pair.</summary>
        public int Fresh() => --_fresh;

        /// <summary>Maps <paramref name="oldId"/> to <paramref name="curId"/>; false when either is already mapped to another.</summary>
        public bool Map(int oldId, int curId)
        {
            for (int i = 0; i < _count; i++)
            {
                if (_old[i] == oldId)
                    return _cur[i] == curId;
                if (_cur[i] == curId)
                    return false;
            }
            if (_count == _old.Length)
            {
                Array.Resize(ref _old, _count * 2);
                Array.Resize(ref _cur, _count * 2);
            }
            _old[_count] = oldId;
            _cur[_count] = curId;
            _count++;
            return true;
        }
    }

    [ThreadStatic] private static IdMap? t_ids;

    /// <summary>Stack slots of the innermost frame live at <paramref name="pc"/> (callers' frames are compared whole).</summary>
    private static ulong StackLive(ulong[]? stackLive, int pc, int frame, int frames) =>
        stackLive is not null && frame == frames - 1 && pc >= 0 && pc < stackLive.Length ? stackLive[pc] : ulong.MaxValue;

    public static bool Covers(VerifierState old, VerifierState cur, ushort[] liveIn, int pc, bool exact = false) =>
        Covers(old, cur, liveIn, null, pc, exact);

    public static bool Covers(VerifierState old, VerifierState cur, ushort[] liveIn, ulong[]? stackLive, int pc, bool exact = false) =>
        Covers(old, cur, liveIn, stackLive, pc, ushort.MaxValue, ulong.MaxValue, exact);

    /// <summary>With precision: a scalar of a single-frame <paramref name="old"/> whose register (bit r of
    /// <paramref name="preciseRegs"/>) or stack slot (bit s of <paramref name="preciseSlots"/>) is not precise covers
    /// any scalar (the kernel's regsafe for !precise). With <paramref name="uninitReadable"/> (a privileged loader,
    /// the kernel's allow_uninit_stack), reading never-written stack gives an unknown number, so untracked bytes
    /// (or an imprecise spilled number) of the old state also cover never-written bytes.</summary>
    public static bool Covers(VerifierState old, VerifierState cur, ushort[] liveIn, ulong[]? stackLive, int pc,
        ushort preciseRegs, ulong preciseSlots, bool exact = false, bool uninitReadable = false)
    {
        if (old.Frames.Count > 1)
        {
            preciseRegs = ushort.MaxValue;
            preciseSlots = ulong.MaxValue;
        }
        if (old.Frames.Count != cur.Frames.Count || old.ReferenceCount != cur.ReferenceCount)
            return false;
        // Held or not held, and which lock (the kernel's active_lock), must match exactly.
        if (old.Lock is { } ol ? cur.Lock is not { } cl || ol.Map != cl.Map || ol.PointerId != cl.PointerId : cur.Lock is not null)
            return false;
        var ids = t_ids ??= new IdMap();
        ids.Clear();
        for (int f = 0; f < old.Frames.Count; f++)
        {
            var o = old.Frames[f];
            var c = cur.Frames[f];
            if (o.FunctionStart != c.FunctionStart || o.ReturnTo != c.ReturnTo || o.IsCallback != c.IsCallback)
                return false;
            // Registers live in this frame: at pc for the innermost, at the return point for callers.
            int at = f == old.Frames.Count - 1 ? pc : old.Frames[f + 1].ReturnTo;
            ushort live = at >= 0 && at < liveIn.Length ? liveIn[at] : (ushort)0x3ff;
            if (f < old.Frames.Count - 1)
                live |= 0x3c0; // callee-saved r6-r9 of callers survive the call
            for (int r = 0; r < 10; r++)
            {
                if ((live & (1 << r)) == 0)
                    continue;
                if (!RegisterCovers(o.Registers[r], c.Registers[r], exact, ids, (preciseRegs & (1 << r)) != 0))
                    return false;
            }
            if (!StackCovers(o, c, StackLive(stackLive, pc, f, old.Frames.Count), exact, ids, preciseSlots, uninitReadable && !exact))
                return false;
        }
        return true;
    }

    /// <summary>
    /// A cheap first test of <see cref="Covers(VerifierState, VerifierState, ushort[], ulong[], int, ushort, ulong, bool, bool)"/>
    /// on the innermost frame's registers in <paramref name="live"/>, without ids: true when <paramref name="old"/>
    /// certainly does not cover <paramref name="cur"/> (a type, pointer offset, packet range or precise value that does
    /// not fit). Most stored states fail here, so the full comparison runs only on the few that may cover.
    /// </summary>
    public static bool QuickReject(VerifierState old, VerifierState cur, ushort live, ushort preciseRegs)
    {
        if (old.Frames.Count != cur.Frames.Count)
            return true;
        if (old.Frames.Count > 1)
            preciseRegs = ushort.MaxValue;
        var o = old.Frames[^1].Registers;
        var c = cur.Frames[^1].Registers;
        for (int r = 0; r < 10; r++)
        {
            if ((live & (1 << r)) == 0)
                continue;
            ref readonly var or = ref o[r];
            if (or.Type == RegisterType.NotInit)
                continue;
            ref readonly var cr = ref c[r];
            if (or.Type != cr.Type)
                return true;
            if (or.Type == RegisterType.Scalar)
            {
                if ((preciseRegs & (1 << r)) != 0 && !cr.Value.IsWithin(or.Value))
                    return true;
                continue;
            }
            if (or.Offset != cr.Offset || cr.Range < or.Range || !ReferenceEquals(or.Map, cr.Map) || or.Frame != cr.Frame
                || or.MemorySize != cr.MemorySize || !cr.Value.IsWithin(or.Value))
                return true;
        }
        return false;
    }

    /// <summary>A hash equal for states that are equal up to id renaming (ids are left out), for the loop check.</summary>
    public static int Hash(VerifierState state, ushort[] liveIn, int pc) => Hash(state, liveIn, null, pc);

    public static int Hash(VerifierState state, ushort[] liveIn, ulong[]? stackLive, int pc)
    {
        var hash = new HashCode();
        hash.Add(state.Frames.Count);
        for (int f = 0; f < state.Frames.Count; f++)
        {
            var frame = state.Frames[f];
            int at = f == state.Frames.Count - 1 ? pc : state.Frames[f + 1].ReturnTo;
            ushort live = at >= 0 && at < liveIn.Length ? liveIn[at] : (ushort)0x3ff;
            if (f < state.Frames.Count - 1)
                live |= 0x3c0;
            for (int r = 0; r < 10; r++)
            {
                if ((live & (1 << r)) == 0)
                    continue;
                var reg = frame.Registers[r];
                hash.Add(reg.Type);
                hash.Add(reg.Offset);
                hash.Add(reg.Value);
                hash.Add(reg.Range);
            }
            ulong slots = StackLive(stackLive, pc, f, state.Frames.Count);
            for (ulong m = slots; m != 0; m &= m - 1)
            {
                int slot = System.Numerics.BitOperations.TrailingZeroCount(m);
                hash.AddBytes(frame.SlotBytes(slot));
            }
        }
        return hash.ToHashCode();
    }

    /// <summary>
    /// Scalar ids link copies (a bound learned on one is learned by all). A scalar of the old state with an id the
    /// current one lacks is covered when that id is not linked to another compared location of the old state: it
    /// is then mapped to a fresh id, as the kernel's check_scalar_ids does, and a second use of it fails.
    /// </summary>
    private static bool MapScalarIds(int oldId, int curId, IdMap ids)
    {
        if (oldId == 0)
            return true;
        return ids.Map(oldId, curId == 0 ? ids.Fresh() : curId);
    }

    private static bool MapIds(int oldId, int curId, IdMap ids)
    {
        if (oldId == 0)
            return true;
        if (curId == 0)
            return false;
        return ids.Map(oldId, curId);
    }

    public static bool RegisterCovers(RegisterState old, RegisterState cur, bool exact, IdMap ids,
        bool precise = true)
    {
        if (old.Type == RegisterType.NotInit)
            return !exact || cur.Type == RegisterType.NotInit;
        if (old.Type != cur.Type)
            return false;
        if (old.Type == RegisterType.Scalar)
        {
            if (!precise && !exact)
                return true;
            bool values = exact ? old.Value == cur.Value : cur.Value.IsWithin(old.Value);
            return values && (exact ? MapIds(old.Id, cur.Id, ids) : MapScalarIds(old.Id, cur.Id, ids));
        }
        if (old.Offset != cur.Offset || !ReferenceEquals(old.Map, cur.Map) || old.Frame != cur.Frame
            || old.MemorySize != cur.MemorySize)
            return false;
        if (exact ? old.Value != cur.Value : !cur.Value.IsWithin(old.Value))
            return false;
        if (cur.Range < old.Range || (exact && cur.Range != old.Range))
            return false;
        return MapIds(old.Id, cur.Id, ids) && MapIds(old.ReferenceId, cur.ReferenceId, ids);
    }

    private static bool StackCovers(FrameState o, FrameState c, ulong live, bool exact, IdMap ids,
        ulong preciseSlots, bool uninitReadable)
    {
        for (ulong m = live; m != 0; m &= m - 1)
        {
            int slot = System.Numerics.BitOperations.TrailingZeroCount(m);
            int b = slot * 8;
            // Fast paths: the same bytes with no spill among them cover each other; bytes the stored path never
            // wrote cover anything (it never read them: they were invalid, or any number to a privileged loader).
            ulong ow = o.SlotWord(slot), cw = c.SlotWord(slot);
            if (ow == cw && !FrameState.HasSpillByte(ow))
                continue;
            if (ow == 0 && !exact)
                continue;
            bool oldSpill = o.StackBytes[b] == StackByte.Spill, curSpill = c.StackBytes[b] == StackByte.Spill;
            if ((oldSpill && FrameState.SpillSize(o.StackBytes, slot) < 8) || (curSpill && FrameState.SpillSize(c.StackBytes, slot) < 8))
            {
                // A narrow spill (of a number). Exact: the same bytes and the same number. Otherwise a precise old
                // spill needs the same spill covering it; an imprecise one, and any spill of the current state,
                // reads like untracked bytes.
                if (exact)
                {
                    for (int i = b; i < b + 8; i++)
                    {
                        if (o.StackBytes[i] != c.StackBytes[i])
                            return false;
                    }
                    if (oldSpill && !RegisterCovers(o.Spills[slot], c.Spills[slot], true, ids))
                        return false;
                    continue;
                }
                bool precise = oldSpill && (preciseSlots & (1UL << slot)) != 0;
                if (precise && (!curSpill || FrameState.SpillSize(o.StackBytes, slot) != FrameState.SpillSize(c.StackBytes, slot)
                    || !RegisterCovers(o.Spills[slot], c.Spills[slot], false, ids)))
                    return false;
                if (curSpill && !c.Spills[slot].IsScalar)
                    return false;
                for (int i = b; i < b + 8; i++)
                {
                    var ob = o.StackBytes[i];
                    var cb = c.StackBytes[i];
                    if (ob == StackByte.Spill)
                    {
                        if (precise)
                        {
                            if (cb != StackByte.Spill)
                                return false;
                            continue;
                        }
                        ob = StackByte.Misc;
                    }
                    if (cb == StackByte.Spill)
                        cb = StackByte.Misc;
                    if (ob == cb || ob == StackByte.Invalid || (ob == StackByte.Misc && cb == StackByte.Zero)
                        || (ob == StackByte.Misc && cb == StackByte.Invalid && uninitReadable))
                        continue;
                    return false;
                }
                continue;
            }
            if (oldSpill)
            {
                if (curSpill)
                {
                    if (!RegisterCovers(o.Spills[slot], c.Spills[slot], exact, ids, (preciseSlots & (1UL << slot)) != 0))
                        return false;
                    continue;
                }
                // An unknown (or imprecise) spilled scalar reads like untracked bytes.
                if (exact || o.Spills[slot].Type != RegisterType.Scalar
                    || (o.Spills[slot].Value != Scalar.Unknown && (preciseSlots & (1UL << slot)) != 0))
                    return false;
                for (int i = b; i < b + 8 && !uninitReadable; i++)
                {
                    if (c.StackBytes[i] == StackByte.Invalid)
                        return false;
                }
                continue;
            }
            if (curSpill && c.Spills[slot].Type != RegisterType.Scalar)
            {
                // A spilled pointer is covered by the same spilled pointer, or (as in the kernel's stacksafe) by bytes
                // the stored path read as any number at most: never written, or untracked where reading
                // never-written stack is allowed. That path verified every value, the pointer's too.
                if (exact)
                    return false;
                for (int i = b; i < b + 8; i++)
                {
                    var ob = o.StackBytes[i];
                    if (!(ob == StackByte.Invalid || (ob == StackByte.Misc && uninitReadable)))
                        return false;
                }
                continue;
            }
            for (int i = b; i < b + 8; i++)
            {
                var ob = o.StackBytes[i];
                var cb = curSpill ? StackByte.Misc : c.StackBytes[i];
                if (ob == cb)
                    continue;
                if (exact)
                    return false;
                // Untracked bytes cover zero bytes (and never-written ones where reading them is allowed);
                // never-written bytes cover anything scalar.
                if (ob == StackByte.Misc && (cb == StackByte.Zero || (cb == StackByte.Invalid && uninitReadable)))
                    continue;
                if (ob == StackByte.Invalid)
                    continue;
                return false;
            }
        }
        return true;
    }
}
