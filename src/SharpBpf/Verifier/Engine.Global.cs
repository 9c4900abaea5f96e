using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>
/// Global functions (BTF linkage global), as the kernel treats them: each is verified once, on its own, with its
/// arguments typed from BTF (a number, the context, or memory of the pointee's size that may be NULL), and a call
/// only checks the arguments against those types and gives an unknown number back. The caller's state does not
/// flow in: a global function that reads a packet pointer out of a struct it was given reads a number.
/// </summary>
internal sealed partial class Engine
{
    private enum GlobalArgument { Scalar, Context, Memory }

    private sealed record GlobalFunction(string Name, int Start, (GlobalArgument Kind, int Size)[] Arguments);

    private readonly Dictionary<int, GlobalFunction> _globals = [];

    /// <summary>Starts of the global functions a call on a verified path reached: only these are verified.</summary>
    private readonly HashSet<int> _calledGlobals = [];

    /// <summary>The stand-in maps that describe global functions' memory arguments (sized, maybe NULL).</summary>
    private readonly HashSet<MapSpec> _argumentMaps = new(ReferenceEqualityComparer.Instance);

    private void FindGlobalFunctions()
    {
        if (_options.Btf is not { } btf)
            return;
        foreach (var info in _program.FuncInfos)
        {
            int start = _graph.IndexAtRaw(info.InstructionOffset);
            if (start <= 0 || info.TypeId >= btf.Types.Count || btf[info.TypeId] is not BtfFunc { Linkage: BtfLinkage.Global } func
                || func.Prototype >= btf.Types.Count || btf[func.Prototype] is not BtfFuncProto proto)
                continue;
            var arguments = new (GlobalArgument, int)[Math.Min(proto.Parameters.Count, 5)];
            for (int i = 0; i < arguments.Length; i++)
                arguments[i] = Classify(btf, func.Name, i, proto.Parameters[i].Type);
            _globals[start] = new GlobalFunction(func.Name, start, arguments);
        }
    }

    private (GlobalArgument, int) Classify(BtfSpec btf, string function, int index, uint typeId)
    {
        var type = btf.SkipQualifiers(typeId);
        switch (type)
        {
            case BtfInt or BtfEnum:
                return (GlobalArgument.Scalar, 0);
            case BtfReference { Kind: BtfKind.Pointer } pointer:
            {
                var target = btf.SkipQualifiers(pointer.Type);
                if (target is BtfComposite composite && composite.Name == _platform.Context.Name)
                    return (GlobalArgument.Context, 0);
                ulong size = 0;
                try
                {
                    size = target is BtfVoid ? 0 : btf.SizeOf(target.Id);
                }
                catch (ObjectFileException)
                {
                }
                if (size is > 0 and < 1 << 29)
                    return (GlobalArgument.Memory, (int)size);
                break;
            }
        }
        throw new Refusal($"argument {index + 1} of global function {function} has type {type}, which a global function cannot take: only numbers, the context and pointers to sized types",
            "make the function static (verified with the caller's state), or pass a pointer to a struct");
    }

    /// <summary>A call to a global function: its arguments are checked against its BTF types; r0 is any number.</summary>
    private int CallGlobal(GlobalFunction function)
    {
        _calledGlobals.Add(function.Start);
        for (int i = 0; i < function.Arguments.Length; i++)
        {
            var reg = (Register)(i + 1);
            var value = Read(reg);
            var (kind, size) = function.Arguments[i];
            switch (kind)
            {
                case GlobalArgument.Scalar:
                    if (!value.IsScalar)
                        throw new Refusal($"R{i + 1} argument {i + 1} of global function {function.Name} must be a number, got {RegisterState.TypeName(value.Type)}", register: reg);
                    break;
                case GlobalArgument.Context:
                    if (value.Type != RegisterType.Context || value.Offset != 0 || value.HasVariableOffset)
                        throw new Refusal($"R{i + 1} argument {i + 1} of global function {function.Name} must be the context, got {value}",
                            "pass the program's context argument unchanged", reg);
                    break;
                case GlobalArgument.Memory:
                    if (value.IsScalar && value.Value.IsConst && value.Value.ConstValue == 0)
                    {
                        MarkPrecise(value.Deps);
                        break;
                    }
                    if (value.IsScalar || value.IsNullable)
                        throw new Refusal($"R{i + 1} argument {i + 1} of global function {function.Name} must point to {size} bytes of memory or be NULL, got {RegisterState.TypeName(value.Type)}", register: reg);
                    CheckHelperMemory(reg, value, (ulong)size, write: false, function.Name);
                    break;
            }
        }
        for (int r = 1; r <= 5; r++)
            Frame.Registers[r] = RegisterState.NotInit;
        Frame.Registers[0] = RegisterState.UnknownScalar;
        return _pc + 1;
    }

    /// <summary>The state a global function is verified from: its own frame, arguments from its BTF types.</summary>
    private VerifierState GlobalInitialState(GlobalFunction function)
    {
        var state = new VerifierState();
        var frame = new FrameState { FunctionStart = function.Start };
        for (int r = 0; r < 11; r++)
            frame.Registers[r] = RegisterState.NotInit;
        for (int i = 0; i < function.Arguments.Length; i++)
        {
            var (kind, size) = function.Arguments[i];
            frame.Registers[i + 1] = kind switch
            {
                GlobalArgument.Scalar => RegisterState.UnknownScalar,
                GlobalArgument.Context => RegisterState.Pointer(RegisterType.Context),
                _ => RegisterState.Pointer(RegisterType.MapValueOrNull) with { Map = ArgumentMap(function, i, size), Id = NewId() },
            };
        }
        state.Frames.Add(frame);
        return state;
    }

    private MapSpec ArgumentMap(GlobalFunction function, int index, int size)
    {
        var map = new MapSpec { Name = $"{function.Name} argument {index + 1}", Type = MapType.Array, KeySize = 4, ValueSize = (uint)size, MaxEntries = 1 };
        _argumentMaps.Add(map);
        return map;
    }
}
