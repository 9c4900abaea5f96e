using SharpBpf.Asm;
using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Vm;
using SharpBpf.Xdp;

// Runs programs on the jit engine in a NativeAOT process and prints one line per case:
//   <case> <result> <tier>
// The tier is what the program got: "baseline" (x86-64 Linux), or "none" (the interpreter ran it).
// Exits 0 when every result is the expected one; NativeAotTests checks the lines.

var jit = new VmOptions { Engine = VmEngine.Jit, InstructionBudget = 1_000_000 };
int failures = 0;

void Report(string name, ulong actual, ulong expected, VmProgram program)
{
    Console.WriteLine($"{name} {actual} {program.JitTierName ?? "none"}");
    if (actual != expected)
    {
        Console.Error.WriteLine($"{name}: {actual}, expected {expected}");
        failures++;
    }
}

static Instruction I(byte op, Register dst, Register src, short off, long imm) => new(new OpCode(op), dst, src, off, imm);

Console.WriteLine($"dynamic-code {System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported}");

// ALU: r0 = 6 * 7.
using (var e = new VmExecution(jit))
{
    var p = VmProgram.Create("alu", [I(0xb7, Register.R0, 0, 0, 6), I(0x27, Register.R0, 0, 0, 7), I(0x95, 0, 0, 0, 0)], ProgramType.Unspec, jit);
    Report("alu", p.Run(e), 42, p);
}

// A bpf-to-bpf call and a loop: f(r1) = sum of 1..r1, called with 10.
using (var e = new VmExecution(jit))
{
    Instruction[] code =
    [
        I(0xb7, Register.R1, 0, 0, 10), I(0x85, 0, (Register)1, 0, 1), I(0x95, 0, 0, 0, 0),
        I(0xb7, Register.R0, 0, 0, 0), I(0x0f, Register.R0, Register.R1, 0, 0), I(0x17, Register.R1, 0, 0, 1),
        I(0x55, Register.R1, 0, -3, 0), I(0x95, 0, 0, 0, 0),
    ];
    var p = VmProgram.Create("calls", code, ProgramType.Unspec, jit);
    Report("calls", p.Run(e), 55, p);
}

// callx of a helper: bpf_get_smp_processor_id through r2 gives 0.
using (var e = new VmExecution(jit))
{
    Instruction[] code = [I(0xb7, Register.R2, 0, 0, 8), I(0x8d, Register.R2, 0, 0, 0), I(0x07, Register.R0, 0, 0, 5), I(0x95, 0, 0, 0, 0)];
    var p = VmProgram.Create("callx", code, ProgramType.Xdp, jit);
    Report("callx", p.Run(e), 5, p);
}

// A tail call from baseline code into a program without code: the run goes on in the interpreter. "entry" tail-calls
// "chain", which the baseline tier leaves out (unverified, it mixes a bpf-to-bpf call with tail calls); chain counts
// in .data and tail-calls itself: 33 tail calls in all, then XDP_PASS.
{
    var spec = new CollectionSpec();
    spec.Maps.Add(new MapSpec { Name = "jumps", Type = MapType.ProgArray, KeySize = 4, ValueSize = 4, MaxEntries = 2 });
    spec.Maps.Add(new MapSpec { Name = ".data", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 1, InitialValue = new byte[8] });
    Instruction[] tailCall = [new(new OpCode(0x18), Register.R2, (Register)1, 0, 0) { Reference = "jumps" }, I(0xb7, Register.R3, 0, 0, 0), I(0x85, 0, 0, 0, 12)];
    spec.Programs.Add(new ProgramSpec { Name = "entry", SectionName = "xdp", Type = ProgramType.Xdp,
        Instructions = [.. tailCall, I(0xb7, Register.R0, 0, 0, 1), I(0x95, 0, 0, 0, 0)] });
    spec.Programs.Add(new ProgramSpec { Name = "chain", SectionName = "xdp", Type = ProgramType.Xdp,
        Instructions =
        [
            I(0x85, 0, (Register)1, 0, 11),                                  // call the subprogram at raw slot 12
            new(new OpCode(0x18), Register.R6, (Register)2, 0, 0) { Reference = ".data" },
            I(0x79, Register.R7, Register.R6, 0, 0), I(0x07, Register.R7, 0, 0, 1), I(0x7b, Register.R6, Register.R7, 0, 0),
            .. tailCall, I(0xb7, Register.R0, 0, 0, 2), I(0x95, 0, 0, 0, 0),
            I(0xb7, Register.R0, 0, 0, 0), I(0x95, 0, 0, 0, 0),
        ] });
    using var collection = VmCollection.Load(spec, jit);
    var chain = collection.Program("chain");
    collection.Map("jumps").Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(chain.Id));
    var entry = collection.Program("entry");
    var result = entry.TestRun(new TestRunOptions { Data = new byte[64] });
    Report("tailcall-action", (ulong)result.Action, (ulong)XdpAction.Pass, entry);
    var value = new byte[8];
    collection.Map(".data").TryLookup(BitConverter.GetBytes(0u), value);
    Report("tailcall-count", BitConverter.ToUInt64(value), 33, chain);
}

// A trap inside native code comes back as the interpreter's exception.
using (var e = new VmExecution(jit))
{
    var p = VmProgram.Create("trap", [I(0xb7, Register.R1, 0, 0, 0), I(0x71, Register.R0, Register.R1, 0, 0), I(0x95, 0, 0, 0, 0)], ProgramType.Unspec, jit);
    try
    {
        p.Run(e);
        Report("trap", 0, 1, p);
    }
    catch (VmTrapException ex)
    {
        Report("trap", (ulong)ex.Kind, (ulong)TrapKind.MemoryAccess, p);
    }
}

return failures == 0 ? 0 : 1;
