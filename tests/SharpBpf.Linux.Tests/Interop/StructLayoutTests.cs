using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.Tests.Interop;

/// <summary>
/// Checks every mirrored kernel struct against the C headers on this machine: a C program printing offsetof and
/// sizeof of each mirrored member is generated from the [CType]/[CField] attributes, compiled and run.
/// </summary>
public class StructLayoutTests
{
    private static readonly Type[] s_structs = typeof(Bpf).Assembly.GetTypes()
        .Where(t => t.IsValueType && t.GetCustomAttribute<CTypeAttribute>() is not null)
        .OrderBy(t => t.Name, StringComparer.Ordinal)
        .ToArray();

    [Fact]
    public void EveryMirroredStructIsChecked()
    {
        // Guards the reflection below: the structs this layer depends on must all carry [CType].
        foreach (var t in new[] { typeof(MapCreateAttr), typeof(MapElemAttr), typeof(MapBatchAttr), typeof(ProgLoadAttr),
                     typeof(ObjAttr), typeof(ProgTestRunAttr), typeof(GetIdAttr), typeof(InfoByFdAttr), typeof(BtfLoadAttr),
                     typeof(LinkCreateAttr), typeof(LinkUpdateAttr), typeof(LinkDetachAttr), typeof(BpfProgInfo),
                     typeof(BpfMapInfo), typeof(BpfBtfInfo), typeof(BpfLinkInfo) })
            Assert.Contains(t, s_structs);
    }

    [Fact]
    public void OffsetsAndSizesMatchTheMachineHeaders()
    {
        var cc = FindCompiler();
        if (cc is null)
            Assert.Skip("no C compiler (cc, gcc or clang) on PATH to read the kernel headers with");
        if (!File.Exists("/usr/include/linux/bpf.h"))
            Assert.Skip("the kernel UAPI headers (linux/bpf.h) are not installed");

        var fields = new List<(Type Struct, FieldInfo Field, string CType, string Member)>();
        var source = new StringBuilder("#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\nint main(void) {\n");
        foreach (var t in s_structs)
        {
            var cType = t.GetCustomAttribute<CTypeAttribute>()!.CType;
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            {
                if (f.GetCustomAttribute<CFieldAttribute>() is not { } cf)
                    continue;
                fields.Add((t, f, cType, cf.Member));
                source.Append(CultureInfoInvariant($"  printf(\"%zu %zu\\n\", offsetof({cType}, {cf.Member}), sizeof((({cType} *)0)->{cf.Member}));\n"));
            }
        }
        source.Append("  return 0;\n}\n");

        var dir = Directory.CreateTempSubdirectory("sharpbpf-layout-");
        try
        {
            var c = Path.Combine(dir.FullName, "layout.c");
            var exe = Path.Combine(dir.FullName, "layout");
            File.WriteAllText(c, source.ToString());
            var (code, output) = Run(cc, $"-o {exe} {c}");
            Assert.True(code == 0, "compiling the layout probe failed:\n" + output);
            (code, output) = Run(exe, "");
            Assert.Equal(0, code);
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(fields.Count, lines.Length);

            var errors = new List<string>();
            var ends = new Dictionary<Type, int>();
            var aligns = new Dictionary<Type, int>();
            for (int i = 0; i < fields.Count; i++)
            {
                var (t, f, cType, member) = fields[i];
                var parts = lines[i].Split(' ');
                int cOffset = int.Parse(parts[0]), cSize = int.Parse(parts[1]);
                int offset = f.GetCustomAttribute<FieldOffsetAttribute>()!.Value;
                int size = SizeOf(f.FieldType);
                if (offset != cOffset || size != cSize)
                    errors.Add($"{t.Name}.{f.Name}: ours offset {offset} size {size}, {cType}.{member}: offset {cOffset} size {cSize}");
                ends[t] = Math.Max(ends.GetValueOrDefault(t), cOffset + cSize);
                // Scalars align to their size; char arrays to 1.
                aligns[t] = Math.Max(aligns.GetValueOrDefault(t, 1), cSize is 4 or 8 ? cSize : 1);
            }
            foreach (var t in s_structs)
            {
                if (!t.GetCustomAttribute<CTypeAttribute>()!.CheckSize)
                    continue;
                int expected = (ends[t] + aligns[t] - 1) & ~(aligns[t] - 1);
                if (SizeOf(t) != expected)
                    errors.Add($"{t.Name}: size {SizeOf(t)}, the mirrored C members end at {ends[t]} (expected {expected})");
            }
            Assert.True(errors.Count == 0, string.Join("\n", errors));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static string CultureInfoInvariant(FormattableString s) => FormattableString.Invariant(s);

    private static int SizeOf(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    private static string? FindCompiler()
    {
        foreach (var name in new[] { "cc", "gcc", "clang" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
                if (dir.Length > 0 && File.Exists(Path.Combine(dir, name)))
                    return Path.Combine(dir, name);
        return null;
    }

    private static (int Code, string Output) Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr);
    }
}
