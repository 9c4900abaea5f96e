using BenchmarkDotNet.Attributes;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Platform;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Bench;

/// <summary>
/// The interpreter's cost per instruction (an ALU loop and a memory loop, 1,000 iterations each) and per call of a
/// 2-instruction program, checked and unchecked. Divide the loop results by <see cref="AluLoopInstructions"/> /
/// <see cref="MemoryLoopInstructions"/> for ns per instruction (printed in the column "ns/insn").
/// Targets: 3 ns per instruction, 15 ns per call (uBPF's interpreter: 5.7-7.6 ns and 26-37 ns on this kind of machine).
/// </summary>
[MemoryDiagnoser]
public class InterpreterBenchmarks
{
    private const int Iterations = 1000;

    /// <summary>Instructions one run of the ALU loop executes.</summary>
    public const int AluLoopInstructions = 2 + Iterations * 6 + 1;

    /// <summary>Instructions one run of the memory loop executes.</summary>
    public const int MemoryLoopInstructions = 3 + Iterations * 6 + 1;

    private VmExecution _execution = null!;
    private VmProgram _aluChecked = null!, _aluUnchecked = null!, _memChecked = null!, _memUnchecked = null!, _tiny = null!;
    private VmProgram _xdpDrop = null!;
    private XdpContext _xdp = null!;
    private readonly byte[] _memory = new byte[64];

    [Params(true, false)]
    public bool Checked { get; set; }

    private static Instruction I(byte op, Register dst, Register src, short off, long imm) => new(new OpCode(op), dst, src, off, imm);

    [GlobalSetup]
    public void Setup()
    {
        _execution = new VmExecution();
        // r0 = 0; r1 = N; loop: r0 += r1; r0 ^= 0x55; r0 <<= 1; r0 >>= 1; r1 -= 1; if r1 != 0 goto loop; exit
        Instruction[] alu =
        [
            I(0xb7, Register.R0, 0, 0, 0),
            I(0xb7, Register.R1, 0, 0, Iterations),
            I(0x0f, Register.R0, Register.R1, 0, 0),
            I(0xa7, Register.R0, 0, 0, 0x55),
            I(0x67, Register.R0, 0, 0, 1),
            I(0x77, Register.R0, 0, 0, 1),
            I(0x17, Register.R1, 0, 0, 1),
            I(0x55, Register.R1, 0, -6, 0),
            I(0x95, 0, 0, 0, 0),
        ];
        // r0 = 0; r2 = N; *(u64*)(r10-8) = 0; loop: r3 = *(u64*)(r10-8); r3 += r2; *(u64*)(r10-8) = r3;
        // r4 = *(u32*)(r1+0); r2 -= 1; if r2 != 0 goto loop; exit
        Instruction[] memory =
        [
            I(0xb7, Register.R0, 0, 0, 0),
            I(0xb7, Register.R2, 0, 0, Iterations),
            I(0x7a, Register.R10, 0, -8, 0),
            I(0x79, Register.R3, Register.R10, -8, 0),
            I(0x0f, Register.R3, Register.R2, 0, 0),
            I(0x7b, Register.R10, Register.R3, -8, 0),
            I(0x61, Register.R4, Register.R1, 0, 0),
            I(0x17, Register.R2, 0, 0, 1),
            I(0x55, Register.R2, 0, -6, 0),
            I(0x95, 0, 0, 0, 0),
        ];
        var check = new VmOptions { CheckMemory = true };
        var noCheck = new VmOptions { CheckMemory = false };
        _aluChecked = VmProgram.Create("alu", alu, HelperTable.Conformance, check);
        _aluUnchecked = VmProgram.Create("alu", alu, HelperTable.Conformance, noCheck);
        _memChecked = VmProgram.Create("mem", memory, HelperTable.Conformance, check);
        _memUnchecked = VmProgram.Create("mem", memory, HelperTable.Conformance, noCheck);
        _tiny = VmProgram.Create("tiny", [I(0xb7, Register.R0, 0, 0, 2), I(0x95, 0, 0, 0, 0)], HelperTable.Conformance, Checked ? check : noCheck);
        _xdpDrop = VmProgram.Create("drop", [I(0xb7, Register.R0, 0, 0, 1), I(0x95, 0, 0, 0, 0)], ProgramType.Xdp, Checked ? check : noCheck);
        _xdp = new XdpContext();
        _xdp.SetPacket(new byte[64]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _execution.Dispose();
        _xdp.Dispose();
    }

    [Benchmark(Description = "ALU loop (6,003 insns)")]
    public ulong AluLoop() => (Checked ? _aluChecked : _aluUnchecked).Run(_execution, _memory);

    [Benchmark(Description = "memory loop (6,004 insns)")]
    public ulong MemoryLoop() => (Checked ? _memChecked : _memUnchecked).Run(_execution, _memory);

    [Benchmark(Description = "2-instruction program, one call")]
    public ulong TwoInstructions() => _tiny.Run(_execution, _memory);

    [Benchmark(Description = "XDP drop, one frame")]
    public XdpAction XdpDrop() => _xdpDrop.RunXdp(_execution, _xdp, out _);
}
