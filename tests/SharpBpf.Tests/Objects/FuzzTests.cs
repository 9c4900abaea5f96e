using SharpBpf.Objects;

namespace SharpBpf.Tests.Objects;

/// <summary>
/// Damaged copies of every fixture (bytes flipped, files truncated) must be read or refused with an
/// <see cref="ObjectFileException"/>: never another exception type, a hang or a huge allocation.
/// Seeds are fixed so a failure reproduces.
/// </summary>
public class FuzzTests
{
    public static TheoryData<string> FixtureNames => [.. Fixtures.All()];

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void FlippedBytesGiveOnlyObjectFileException(string fixture)
    {
        var original = Fixtures.Bytes(fixture);
        var random = new Random(StableSeed(fixture));
        for (int round = 0; round < 1000; round++)
        {
            var damaged = (byte[])original.Clone();
            int flips = 1 + random.Next(8);
            for (int i = 0; i < flips; i++)
            {
                int at = random.Next(damaged.Length);
                damaged[at] = random.Next(3) switch
                {
                    0 => (byte)(damaged[at] ^ (1 << random.Next(8))),
                    1 => (byte)random.Next(256),
                    _ => 0xff,
                };
            }
            TryRead(damaged, $"{fixture} round {round}");
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void DamagedHeadersAndTablesGiveOnlyObjectFileException(string fixture)
    {
        // Aim at the structures that hold offsets and counts: the ELF header, the section header table, and the
        // first bytes of .BTF and .BTF.ext.
        var original = Fixtures.Bytes(fixture);
        var elf = SharpBpf.Elf.ElfFile.Parse(original);
        var targets = new List<(int Start, int Length)> { (0, 64) };
        ulong shoff = BitConverter.ToUInt64(original, 40);
        targets.Add(((int)shoff, original.Length - (int)shoff));
        foreach (var name in new[] { ".BTF", ".BTF.ext", ".symtab", ".maps" })
        {
            if (elf.FindSection(name) is { } s)
                targets.Add(((int)s.FileOffset, (int)Math.Min(s.Size, 256)));
        }
        var random = new Random(StableSeed(fixture) + 1);
        for (int round = 0; round < 1000; round++)
        {
            var (start, length) = targets[round % targets.Count];
            var damaged = (byte[])original.Clone();
            int at = start + random.Next(Math.Max(1, length));
            if (at >= damaged.Length)
                continue;
            damaged[at] = (byte)random.Next(256);
            if (random.Next(2) == 0 && at + 1 < damaged.Length)
                damaged[at + 1] = (byte)random.Next(256);
            TryRead(damaged, $"{fixture} round {round}, byte {at}");
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void TruncatedFilesGiveOnlyObjectFileException(string fixture)
    {
        var original = Fixtures.Bytes(fixture);
        var random = new Random(StableSeed(fixture) + 2);
        var lengths = new HashSet<int> { 0, 1, 4, 16, 63, 64, 65, original.Length - 1 };
        while (lengths.Count < 150)
            lengths.Add(random.Next(original.Length));
        foreach (int length in lengths)
        {
            var ex = Assert.Throws<ObjectFileException>(() => ObjectFile.Read(original.AsMemory(0, length)));
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        }
    }

    private static void TryRead(byte[] bytes, string what)
    {
        try
        {
            var spec = ObjectFile.Read(bytes);
            Assert.NotNull(spec);
        }
        catch (ObjectFileException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
        }
    }

    private static int StableSeed(string text)
    {
        int seed = 17;
        foreach (char c in text)
            seed = seed * 31 + c;
        return seed;
    }
}
