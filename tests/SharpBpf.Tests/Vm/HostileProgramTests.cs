using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Tests.Vm;

/// <summary>Random programs, valid-looking and not, must be refused or run to an exit or a trap: never crash the host.</summary>
public class HostileProgramTests
{
    private static readonly byte[] Opcodes =
    [
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f, 0x87, 0x97, 0x9f,
        0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0xd7, 0x04, 0x0c, 0x14, 0x34, 0x3c, 0x64, 0x74, 0x84, 0x94, 0xb4, 0xbc, 0xc4,
        0xd4, 0xdc, 0x05, 0x06, 0x15, 0x1d, 0x25, 0x2d, 0x55, 0x5d, 0x65, 0xa5, 0xc5, 0xd5, 0x16, 0x1e, 0x56, 0x85, 0x8d, 0x95,
        0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x18,
    ];

    [Fact]
    public void RandomProgramsNeverEscapeTheVm()
    {
        var random = new Random(1234);
        var options = new VmOptions { InstructionBudget = 20_000 };
        using var execution = new VmExecution(options);
        using var context = new XdpContext();
        int loaded = 0, ran = 0, trapped = 0;
        for (int round = 0; round < 3000; round++)
        {
            int length = random.Next(1, 24);
            var bytes = new byte[length * 8];
            random.NextBytes(bytes);
            for (int i = 0; i < length; i++)
            {
                var slot = bytes.AsSpan(i * 8);
                slot[0] = Opcodes[random.Next(Opcodes.Length)];
                // Mostly small registers and offsets, so programs often load and do something.
                slot[1] = (byte)(random.Next(11) | (random.Next(11) << 4));
                if (random.Next(4) != 0)
                {
                    short off = (short)random.Next(-8, 8);
                    BitConverter.TryWriteBytes(slot[2..], off);
                }
                if (random.Next(3) != 0)
                    BitConverter.TryWriteBytes(slot[4..], random.Next(-600, 600));
            }
            for (int i = 0; i < length; i++)
                Tidy(bytes.AsSpan(i * 8, 8), i + 1 < length ? bytes.AsSpan((i + 1) * 8, 8) : default, random);
            // Most programs end in exit so they get past the last-instruction check.
            if (random.Next(5) != 0)
            {
                bytes.AsSpan((length - 1) * 8, 8).Clear();
                bytes[(length - 1) * 8] = 0x95;
            }
            VmProgram program;
            try
            {
                program = VmProgram.Create($"random{round}", InstructionCodec.Decode(bytes), HelperTable.Xdp, options);
            }
            catch (BpfException)
            {
                continue;
            }
            loaded++;
            context.SetPacket(new byte[64]);
            var action = program.RunXdp(execution, context, out var trap);
            if (trap is not null)
            {
                trapped++;
                Assert.Equal(XdpAction.Aborted, action);
                Assert.InRange(trap.InstructionIndex, 0, program.InstructionCount);
            }
            else
            {
                ran++;
            }
        }
        // The generator must actually exercise the interpreter, not only the decoder.
        Assert.True(loaded > 300, $"only {loaded} programs loaded");
        Assert.True(ran > 50 && trapped > 50, $"ran {ran}, trapped {trapped}");
    }

    private static readonly int[] Helpers = [1, 2, 3, 5, 6, 7, 8, 23, 44, 65, 999];
    private static readonly int[] AtomicOps = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];

    private static void Set(Span<byte> slot, int d, int s2, short off, int imm)
    {
        slot[1] = (byte)(d | (s2 << 4));
        BitConverter.TryWriteBytes(slot[2..], off);
        BitConverter.TryWriteBytes(slot[4..], imm);
    }

    /// <summary>Clears the fields the decoder requires to be zero, most of the time, so most programs load.</summary>
    private static void Tidy(Span<byte> slot, Span<byte> next, Random random)
    {
        if (random.Next(10) == 0)
            return; // leave some garbage for the decoder to refuse
        byte op = slot[0];
        int cls = op & 7;
        int dst = slot[1] & 0x0f, src = slot[1] >> 4;
        short offset = BitConverter.ToInt16(slot[2..]);
        int immediate = BitConverter.ToInt32(slot[4..]);
        if (dst == 10 && cls is 0 or 1 or 4 or 7)
            dst = random.Next(10);
        switch (cls)
        {
            case 4 or 7:
                if ((op & 0xf0) == 0xd0)
                    Set(slot, dst, 0, 0, new[] { 16, 32, 64 }[random.Next(3)]);
                else if ((op & 0xf0) == 0x80)
                    Set(slot, dst, 0, 0, 0);
                else if ((op & 0x08) != 0)
                    Set(slot, dst, src, 0, 0);
                else
                    Set(slot, dst, 0, 0, immediate);
                break;
            case 5 or 6:
                if (op == 0x05)
                    Set(slot, 0, 0, offset, 0);
                else if (op == 0x06)
                    Set(slot, 0, 0, 0, immediate % 8);
                else if (op == 0x85)
                    Set(slot, 0, 0, 0, Helpers[random.Next(Helpers.Length)]);
                else if (op == 0x8d)
                    Set(slot, dst, 0, 0, 0);
                else if (op == 0x95)
                    Set(slot, 0, 0, 0, 0);
                else if ((op & 0x08) != 0)
                    Set(slot, dst, src, offset, 0);
                else
                    Set(slot, dst, 0, offset, immediate);
                break;
            case 1:
                Set(slot, dst, src, offset, 0);
                break;
            case 2:
                Set(slot, dst, 0, offset, immediate);
                break;
            case 3:
                Set(slot, dst, src, offset, (op & 0xe0) == 0xc0 ? AtomicOps[random.Next(AtomicOps.Length)] : 0);
                break;
            case 0 when op == 0x18 && !next.IsEmpty:
                Set(slot, dst, 0, 0, immediate);
                next[0] = 0;
                next[1] = 0;
                next[2] = 0;
                next[3] = 0;
                break;
        }
    }
}
