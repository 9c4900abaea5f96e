using System.Buffers.Binary;
using System.Reflection;
using System.Reflection.Emit;
using OpCode = System.Reflection.Emit.OpCode;

namespace SharpBpf.Vm.Jit;

/// <summary>A label of an <see cref="IlWriter"/>.</summary>
internal readonly record struct IlLabel(int Id);

/// <summary>A local of an <see cref="IlWriter"/>.</summary>
internal readonly record struct IlLocal(int Index);

/// <summary>
/// Writes a <see cref="DynamicMethod"/>'s IL as bytes and hands them over through <see cref="DynamicILInfo"/>: the
/// subset of <see cref="ILGenerator"/> the JIT's emitter uses, at a fraction of its cost (the JIT emits one instruction
/// call per IL opcode, thousands per program), with the locals signature built directly. The shortest encodings are
/// picked for locals and constants; branches use the 4-byte form (their distance is not known when emitted).
/// </summary>
internal sealed class IlWriter
{
    // Locals signature element types (ECMA-335 II.23.1.16).
    private const byte ElementTypeI4 = 0x08, ElementTypeU8 = 0x0b, ElementTypeU1 = 0x05;

    private byte[] _code;
    private int _length;
    private readonly List<byte> _localTypes = [];
    private int[] _labelOffsets = new int[64];
    private int _labelCount;
    // A 4-byte branch operand at Patch, relative to the offset Origin (the end of the branch or switch instruction).
    private readonly List<(int Patch, int Origin, int Label)> _fixups = [];
    private readonly Dictionary<MemberInfo, int> _tokens = [];
    private readonly DynamicILInfo _info;

    public IlWriter(DynamicMethod method, int capacity)
    {
        _info = method.GetDynamicILInfo();
        _code = new byte[Math.Max(64, capacity)];
    }

    /// <summary>Locals declared so far.</summary>
    public int LocalCount => _localTypes.Count;

    /// <summary>Bytes of IL written so far.</summary>
    public int ILOffset => _length;

    public IlLocal DeclareLocal(Type type)
    {
        byte element = type == typeof(ulong) ? ElementTypeU8
            : type == typeof(int) ? ElementTypeI4
            : type == typeof(byte) ? ElementTypeU1
            : throw new ArgumentException($"IlWriter declares ulong, int and byte locals, not {type}", nameof(type));
        _localTypes.Add(element);
        return new IlLocal(_localTypes.Count - 1);
    }

    /// <summary>Declares <paramref name="count"/> byte locals that the code never uses.</summary>
    public void DeclareUnusedLocals(int count)
    {
        for (int i = 0; i < count; i++)
            _localTypes.Add(ElementTypeU1);
    }

    public IlLabel DefineLabel()
    {
        if (_labelCount == _labelOffsets.Length)
            Array.Resize(ref _labelOffsets, _labelCount * 2);
        _labelOffsets[_labelCount] = -1;
        return new IlLabel(_labelCount++);
    }

    public void MarkLabel(IlLabel label) => _labelOffsets[label.Id] = _length;

    public void Emit(OpCode opcode) => Op(opcode);

    public void Emit(OpCode opcode, sbyte value)
    {
        Op(opcode);
        Byte((byte)value);
    }

    public void Emit(OpCode opcode, byte value)
    {
        Op(opcode);
        Byte(value);
    }

    public void Emit(OpCode opcode, int value)
    {
        Op(opcode);
        Int32(value);
    }

    public void Emit(OpCode opcode, long value)
    {
        Op(opcode);
        Reserve(8);
        BinaryPrimitives.WriteInt64LittleEndian(_code.AsSpan(_length), value);
        _length += 8;
    }

    /// <summary>ldloc, stloc or ldloca on <paramref name="local"/>, in its shortest form.</summary>
    public void Emit(OpCode opcode, IlLocal local)
    {
        int i = local.Index;
        if (opcode.Value == OpCodes.Ldloc.Value)
        {
            if (i < 4) Byte((byte)(0x06 + i));
            else if (i < 256) { Byte(0x11); Byte((byte)i); }
            else { Byte(0xfe); Byte(0x0c); UInt16(i); }
        }
        else if (opcode.Value == OpCodes.Stloc.Value)
        {
            if (i < 4) Byte((byte)(0x0a + i));
            else if (i < 256) { Byte(0x13); Byte((byte)i); }
            else { Byte(0xfe); Byte(0x0e); UInt16(i); }
        }
        else if (opcode.Value == OpCodes.Ldloca.Value)
        {
            if (i < 256) { Byte(0x12); Byte((byte)i); }
            else { Byte(0xfe); Byte(0x0d); UInt16(i); }
        }
        else
        {
            throw new ArgumentException($"{opcode} does not take a local", nameof(opcode));
        }
    }

    /// <summary>A branch in its 4-byte form.</summary>
    public void Emit(OpCode opcode, IlLabel label)
    {
        if (opcode.OperandType != OperandType.InlineBrTarget)
            throw new ArgumentException($"{opcode} is not a 4-byte branch", nameof(opcode));
        Op(opcode);
        _fixups.Add((_length, _length + 4, label.Id));
        Int32(0);
    }

    public void Emit(OpCode opcode, IlLabel[] table)
    {
        if (opcode.Value != OpCodes.Switch.Value)
            throw new ArgumentException($"{opcode} does not take a label table", nameof(opcode));
        Op(opcode);
        Int32(table.Length);
        int origin = _length + 4 * table.Length;
        foreach (var label in table)
        {
            _fixups.Add((_length, origin, label.Id));
            Int32(0);
        }
    }

    public void Emit(OpCode opcode, MethodInfo method) => EmitToken(opcode, method);

    public void Emit(OpCode opcode, FieldInfo field) => EmitToken(opcode, field);

    /// <summary>The opcode and the method's token for its member, one token per member.</summary>
    private void EmitToken(OpCode opcode, MemberInfo member)
    {
        Op(opcode);
        if (!_tokens.TryGetValue(member, out int token))
        {
            RuntimeTypeHandle? owner = member.DeclaringType is { IsGenericType: true } type ? type.TypeHandle : null;
            token = member switch
            {
                MethodInfo m => owner is { } o ? _info.GetTokenFor(m.MethodHandle, o) : _info.GetTokenFor(m.MethodHandle),
                FieldInfo f => owner is { } o ? _info.GetTokenFor(f.FieldHandle, o) : _info.GetTokenFor(f.FieldHandle),
                _ => throw new ArgumentException($"IlWriter emits tokens for methods and fields, not {member}", nameof(member)),
            };
            _tokens[member] = token;
        }
        Int32(token);
    }

    /// <summary>Resolves the branches and hands code and locals to the method.</summary>
    public void Complete(int maxStack)
    {
        foreach (var (patch, origin, label) in _fixups)
        {
            int target = _labelOffsets[label];
            if (target < 0)
                throw new InvalidOperationException($"IL label {label} was never marked");
            BinaryPrimitives.WriteInt32LittleEndian(_code.AsSpan(patch), target - origin);
        }
        _info.SetCode(_code.AsSpan(0, _length).ToArray(), maxStack);
        _info.SetLocalSignature(LocalSignature());
    }

    private byte[] LocalSignature()
    {
        int count = _localTypes.Count;
        var signature = new byte[1 + 4 + count];
        int n = 0;
        signature[n++] = 0x07; // LOCAL_SIG
        if (count < 0x80)
        {
            signature[n++] = (byte)count;
        }
        else if (count < 0x4000)
        {
            signature[n++] = (byte)(0x80 | (count >> 8));
            signature[n++] = (byte)count;
        }
        else
        {
            signature[n++] = (byte)(0xc0 | (count >> 24));
            signature[n++] = (byte)(count >> 16);
            signature[n++] = (byte)(count >> 8);
            signature[n++] = (byte)count;
        }
        foreach (byte type in _localTypes)
            signature[n++] = type;
        return signature.AsSpan(0, n).ToArray();
    }

    private void Op(OpCode opcode)
    {
        if (opcode.Size == 1)
        {
            Byte((byte)opcode.Value);
        }
        else
        {
            Byte((byte)(opcode.Value >> 8));
            Byte((byte)opcode.Value);
        }
    }

    private void Reserve(int bytes)
    {
        if (_length + bytes > _code.Length)
            Array.Resize(ref _code, Math.Max(_code.Length * 2, _length + bytes));
    }

    private void Byte(byte value)
    {
        Reserve(1);
        _code[_length++] = value;
    }

    private void UInt16(int value)
    {
        Reserve(2);
        BinaryPrimitives.WriteUInt16LittleEndian(_code.AsSpan(_length), (ushort)value);
        _length += 2;
    }

    private void Int32(int value)
    {
        Reserve(4);
        BinaryPrimitives.WriteInt32LittleEndian(_code.AsSpan(_length), value);
        _length += 4;
    }
}
