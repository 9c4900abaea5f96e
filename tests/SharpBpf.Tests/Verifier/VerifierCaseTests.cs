using SharpBpf.Verifier;

namespace SharpBpf.Tests.Verifier;

/// <summary>Runs every case under Verifier/Cases: the verdict, the refused instruction and the message must match.</summary>
public class VerifierCaseTests
{
    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var c in VerifierCase.LoadAll())
            data.Add(c.Id);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIds))]
    public void Case(string id)
    {
        var c = VerifierCase.LoadAll().Single(x => x.Id == id);
        if (c.NeedsKernelBtf)
        {
            var kernel = global::SharpBpf.Btf.RunningKernelBtf.TryLoad();
            if (kernel is null)
                Assert.Skip($"{id} calls kernel functions, and there is no kernel BTF (/sys/kernel/btf/vmlinux) here");
            foreach (var name in c.ToProgram().Instructions.Where(i => i.OpCode.Value == 0x85 && i.Src == (global::SharpBpf.Asm.Register)global::SharpBpf.Asm.CallKind.Kfunc && i.Reference is not null).Select(i => i.Reference!))
            {
                if (kernel.FindByName(name, global::SharpBpf.Btf.BtfKind.Func) is null)
                    Assert.Skip($"{id} calls the kernel function {name}, which this kernel does not have");
            }
        }
        var options = new VerifierOptions { Maps = c.Maps, Privileged = c.Privileged, ComplexityLimit = c.ComplexityLimit };
        var result = BpfVerifier.Verify(c.ToProgram(), options);
        string Trace() => result.ProcessedInstructions < 5000
            ? BpfVerifier.Verify(c.ToProgram(), options with { Log = true }).Log ?? ""
            : "(trace omitted: long run)";
        if (c.ExpectAccept)
        {
            Assert.True(result.Accepted, $"expected accept, got: {result.Error}\n{Trace()}");
            return;
        }
        Assert.False(result.Accepted, $"expected a refusal ({c.ExpectMessage}), but the program was accepted\n{Trace()}");
        var error = result.Error!;
        if (c.ExpectIndex is { } index)
            Assert.True(index == error.InstructionIndex, $"expected the refusal at instruction {index}, got {error}\n{Trace()}");
        if (c.ExpectMessage is { } message)
            Assert.True(error.Message.Contains(message, StringComparison.OrdinalIgnoreCase), $"expected '{message}' in: {error}");
        if (c.ExpectHint is { } hint)
            Assert.True(error.Hint?.Contains(hint, StringComparison.OrdinalIgnoreCase) == true, $"expected hint '{hint}' in: {error}");
    }

    [Fact]
    public void EveryCaseFileHasAcceptedAndRefusedCases()
    {
        foreach (var group in VerifierCase.LoadAll().GroupBy(c => c.File))
        {
            Assert.True(group.Any(c => c.ExpectAccept), $"{group.Key} has no accepted case");
            Assert.True(group.Any(c => !c.ExpectAccept), $"{group.Key} has no refused case");
        }
    }
}
