using System.Diagnostics;
using System.Text.RegularExpressions;
using SharpBpf.Asm;

namespace SharpBpf.Tests.Asm;

/// <summary>
/// Builds a C program with clang-14 for -mcpu=v1, v2 and v3 in a temp folder and checks that our listing of each code
/// section is llvm-objdump-14's, line for line (objdump's symbol and label annotations aside).
/// </summary>
public class ObjdumpComparisonTests
{
    private const string Source = """
        struct xdp_md { unsigned int data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
        #define SEC(x) __attribute__((section(x), used))
        static long (*ktime)(void) = (void *)5;
        struct { int a; short b; char c; long d; unsigned int e; } g;
        static __attribute__((noinline)) int sub(int x) { return x * 3 + 1; }
        SEC("xdp") int prog(struct xdp_md *ctx) {
            unsigned char *p = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
            if (p + 24 > end) return 1;
            long v = p[0] | (p[1] << 8) | ((long)p[2] << 40);
            unsigned int w = *(unsigned int *)(p + 4);
            unsigned long u = *(unsigned long *)(p + 8);
            v ^= ktime();
            v = v >> 3; w = w << 2; v = (long)v >> 1; u = u >> (w & 7);
            if ((int)w < -5) v += 7;
            if (w & 0x10) v -= 2;
            if (u > 0x123456789aUL) v |= 1;
            if ((long)u <= -3) v &= ~8;
            if (w >= (unsigned int)v) v -= w;
            __sync_fetch_and_add(&g.d, v);
            long old = __sync_fetch_and_or(&g.d, 4);
            __sync_lock_test_and_set(&g.d, old);
            __sync_val_compare_and_swap(&g.d, 3, old);
            __sync_fetch_and_add(&g.a, 1);
            g.b = __builtin_bswap16(g.b);
            g.e = __builtin_bswap32(g.e) + (unsigned int)__builtin_bswap64(u);
            g.c = -g.c;
            v = (unsigned long)v / 7 + (unsigned long)v % 5 + sub(w) + (w / 3) + (w % 9);
            *(unsigned short *)(p + 2) = (unsigned short)v;
            return v & 3;
        }
        char _license[] SEC("license") = "GPL";
        """;

    private static async Task<(int Code, string Out, string Err)> Run(string tool, string args, string dir)
    {
        var psi = new ProcessStartInfo(tool, args) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = await process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, stderr);
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v2")]
    [InlineData("v3")]
    public async Task ListingMatchesLlvmObjdump14(string cpu)
    {
        string[] tools = ["/usr/bin/clang-14", "/usr/bin/llvm-objdump-14", "/usr/bin/llvm-objcopy-14"];
        if (tools.FirstOrDefault(t => !File.Exists(t)) is { } missing)
            Assert.Skip($"{missing} is not installed");
        var dir = Directory.CreateTempSubdirectory("sharpbpf-objdump-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "prog.c"), Source, TestContext.Current.CancellationToken);
            var build = await Run(tools[0], $"-O2 -target bpf -mcpu={cpu} -c prog.c -o prog.o", dir);
            Assert.True(build.Code == 0, build.Err);
            var dump = await Run(tools[1], "-d prog.o", dir);
            Assert.True(dump.Code == 0, dump.Err);

            // objdump: "Disassembly of section NAME:" then "   12:\t<bytes>\t<text>" lines; labels and blank lines between.
            var expected = new Dictionary<string, List<string>>();
            List<string>? current = null;
            foreach (var line in dump.Out.Split('\n'))
            {
                var section = Regex.Match(line, "^Disassembly of section (.+):$");
                if (section.Success)
                    expected[section.Groups[1].Value] = current = [];
                else if (current is not null && Regex.IsMatch(line, @"^\s+\d+:\t"))
                    current.Add(Regex.Replace(line, @" <[A-Za-z_.$][^ >]*>$", ""));
            }
            Assert.Contains("xdp", expected.Keys);
            Assert.Contains(".text", expected.Keys);

            int compared = 0;
            foreach (var (section, lines) in expected)
            {
                var copy = await Run(tools[2], $"-O binary --only-section={section} prog.o section.bin", dir);
                Assert.True(copy.Code == 0, copy.Err);
                var instructions = InstructionCodec.Decode(await File.ReadAllBytesAsync(Path.Combine(dir, "section.bin"), TestContext.Current.CancellationToken));
                var ours = Disassembler.Listing(instructions).TrimEnd('\n').Split('\n');
                Assert.Equal(lines, ours);
                InstructionValidator.Validate(instructions, (IsaVersion)(cpu[1] - '0'));
                compared += lines.Count;
            }
            Assert.True(compared > 40, $"only {compared} instructions compared");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
