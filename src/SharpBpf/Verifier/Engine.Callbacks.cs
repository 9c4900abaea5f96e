using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>
/// Callbacks (bpf_loop, bpf_for_each_map_elem) verified the way the kernel does since 6.8: a callback may run any
/// number of times, so a call of such a helper forks. One path goes on after the call as if the callback ran no more;
/// the other runs the callback once from the state before the call and, when it returns, comes back to the call
/// itself, which runs it again. The call instruction is a forced checkpoint where a state is pruned when an earlier
/// one there (even one still being explored) covers it with every scalar compared by range, so the walk ends when the
/// caller-visible state (the caller's stack the callback writes through its context pointer) stops changing. As in
/// the kernel, a number the verdict does not depend on (imprecise) that changed from one run to the next is widened
/// to unknown, and bpf_loop runs its callback at most nr_loops times.
/// </summary>
internal sealed partial class Engine
{
    /// <summary>Per instruction: a call of a helper that runs a callback (a forced checkpoint).</summary>
    private bool[] _callbackSites = [];

    /// <summary>Finds the calls of callback-running helpers and makes them prune points.</summary>
    private void MarkCallbackSites()
    {
        _callbackSites = new bool[_graph.Count];
        for (int i = 0; i < _graph.Count; i++)
        {
            var insn = _graph[i];
            if (insn.OpCode.Value != 0x85 || insn.Src != 0 || !_platform.TryGetHelper((HelperId)insn.Immediate, out var proto))
                continue;
            for (int a = 0; a < proto.Arguments.Count; a++)
            {
                if (proto.Argument(a) == ArgumentKind.Function)
                {
                    _callbackSites[i] = true;
                    _graph.PrunePoints[i] = true;
                }
            }
        }
    }

    /// <summary>At a call of a callback-calling helper whose arguments were checked: pushes the path that runs the
    /// callback (from the state before the call, its frame returning to this call); the current path goes on after
    /// the call as if the callback ran no more.</summary>
    private void ScheduleCallback(HelperId id, CallInfo info)
    {
        var caller = Frame;
        if (id == HelperId.Loop)
        {
            // How many more runs bpf_loop allows depends on nr_loops: the verdict relies on it.
            var count = Frame.Registers[1];
            MarkPrecise(count.Deps);
            ulong limit = count.IsScalar ? count.Value.UMax : ulong.MaxValue;
            if ((ulong)caller.CallbackDepth >= limit)
            {
                _log?.AppendLine($"{_pc}: bpf_loop iteration limit reached");
                caller.CallbackDepth = 0;
                return;
            }
        }
        var args = new RegisterState[5];
        for (int i = 0; i < 5; i++)
            args[i] = RegisterState.NotInit;
        if (id == HelperId.Loop)
        {
            args[0] = RegisterState.FromScalar(Scalar.OfSize(4));
            args[1] = info.CallbackContext;
        }
        else
        {
            var map = info.Map!;
            var keyMap = new MapSpec { Name = map.Name + " key", Type = MapType.Array, ValueSize = map.KeySize, Freeze = true };
            args[0] = RegisterState.Pointer(RegisterType.MapPointer) with { Map = map };
            args[1] = RegisterState.Pointer(RegisterType.MapValue) with { Map = keyMap };
            args[2] = RegisterState.Pointer(RegisterType.MapValue) with { Map = map };
            args[3] = info.CallbackContext;
        }
        var current = _state;
        _state = current.Clone();
        Frame.CallbackDepth++;
        int target = EnterFunction(info.Callback, _pc, callback: true, args);
        var callbackState = _state;
        _state = current;
        caller.CallbackDepth = 0;
        Fork(callbackState, target, _parent);
    }

    /// <summary>A callback returned (its frame is gone): back to the call that ran it, which may run it again. A
    /// number of the caller that changed since the checkpoint at that call and that nothing there relied on becomes
    /// unknown (the kernel's widen_imprecise_scalars), so that the runs converge.</summary>
    private int ReturnFromCallback(FrameState callback)
    {
        int callsite = callback.ReturnTo;
        Checkpoint? previous = null;
        for (var c = _parent; c is not null; c = c.Parent)
        {
            if (c.Pc == callsite && c.State.Frames.Count == _state.Frames.Count)
            {
                previous = c;
                break;
            }
        }
        if (previous is not null && (previous.MultiFrame || _options.WithoutPrecision))
        {
            // A checkpoint of several frames keeps no precision marks (every scalar counts as precise): the kernel
            // would widen the numbers nothing relied on, we cannot tell which. Widening is always sound (a number
            // becomes any number); to keep the verdict on values a few runs rely on, the numbers that changed are
            // widened only after MultiFrameRunsBeforeWidening runs on this path.
            if (Frame.CallbackDepth > MultiFrameRunsBeforeWidening)
            {
                for (int f = 0; f < _state.Frames.Count && f < previous.State.Frames.Count; f++)
                    WidenFrame(previous.State.Frames[f], _state.Frames[f], 0, 0);
            }
        }
        else if (previous is not null)
        {
            WidenFrame(previous.State.Frames[0], _state.Frames[0], previous.PreciseRegs, previous.PreciseSlots);
        }
        return callsite;
    }

    /// <summary>At a callback-calling call: a state here still being explored (an earlier run of the same loop of
    /// callbacks, on this path) that covers the current one with every scalar compared by range ends the path (the
    /// kernel's RANGE_WITHIN check at calls_callback instructions). The newest <see cref="CallbackRunsCompared"/>
    /// runs are compared: fewer prunes are sound, and all of them would cost the square of the runs.</summary>
    private bool CoveredByCallbackRun()
    {
        int compared = 0, steps = 0;
        for (var c = _parent; c is not null && compared < CallbackRunsCompared && steps < CallbackRunsCompared * 16; c = c.Parent, steps++)
        {
            if (c.Pc != _pc || c.Branches <= 0)
                continue;
            compared++;
            if (StateComparison.Covers(c.State, _state, _liveIn, _stackLive, _pc, ushort.MaxValue, ulong.MaxValue))
            {
                _log?.AppendLine($"{_pc}: callback runs converged (covered by a state of an earlier run)");
                c.Hits++;
                PropagatePrecision(c);
                return true;
            }
        }
        return false;
    }

    /// <summary>Bounds the runs of a callback called from a bpf-to-bpf function before changed numbers are widened.</summary>
    private const int MultiFrameRunsBeforeWidening = 64;

    /// <summary>At most this many earlier runs' states at a callback-calling call are compared with a new one (the
    /// newest): each run keeps one, and comparing with all of them would cost the square of the runs.</summary>
    private const int CallbackRunsCompared = 64;

    /// <summary>Numbers of <paramref name="cur"/> (registers, 8-byte spills) that differ from <paramref name="old"/>
    /// and are not marked precise become unknown.</summary>
    private static void WidenFrame(FrameState old, FrameState cur, ushort preciseRegs, ulong preciseSlots)
    {
        for (int r = 0; r < 10; r++)
        {
            if ((preciseRegs & (1 << r)) == 0 && Widens(old.Registers[r], cur.Registers[r]))
                cur.Registers[r] = RegisterState.UnknownScalar with { Deps = cur.Registers[r].Deps };
        }
        for (int slot = 0; slot < FrameState.SlotCount; slot++)
        {
            if ((preciseSlots & (1UL << slot)) != 0 || cur.StackBytes[slot * 8] != StackByte.Spill
                || old.StackBytes[slot * 8] != StackByte.Spill || FrameState.SpillSize(cur.StackBytes, slot) != 8)
                continue;
            if (Widens(old.Spills[slot], cur.Spills[slot]))
                cur.WritableSpills[slot] = RegisterState.UnknownScalar with { Deps = cur.Spills[slot].Deps };
        }
    }

    private static bool Widens(RegisterState old, RegisterState cur) =>
        old.IsScalar && cur.IsScalar && (old.Value != cur.Value || old.Id != cur.Id) && !(cur.Value == Scalar.Unknown && cur.Id == 0);
}
