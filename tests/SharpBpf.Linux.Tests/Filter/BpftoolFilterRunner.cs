using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpBpf.Linux.Filter;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>
/// Runs programs/xdp_filter.o in the kernel through bpftool, independently of the project's own loader: the rule
/// maps are written with the entries <see cref="FilterState"/> produces, each frame goes through BPF_PROG_TEST_RUN,
/// and the counters are read back. Everything happens in a private mount namespace with its own bpffs on
/// /sys/fs/bpf, so the maps bpftool pins by name vanish with the process.
/// </summary>
internal static class BpftoolFilterRunner
{
    public sealed record Result(int[] Actions, ulong[] Hits, FilterCounter Dropped, FilterCounter Passed);

    public static void RequireBpftool()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Skip("needs Linux");
        if (!Environment.IsPrivilegedProcess)
            Assert.Skip("needs root (BPF, a private bpffs mount)");
        if (Which("bpftool") is null || Which("unshare") is null)
            Assert.Skip("bpftool or unshare is not installed (apt-get install bpftool util-linux)");
    }

    public static Result Run(FilterPolicy policy, IReadOnlyList<FilterRule> rules, IReadOnlyList<byte[]> frames)
    {
        var dir = Directory.CreateTempSubdirectory("sharpbpf-filter-");
        try
        {
            var commands = new List<string> { $"prog load {ObjectPath} /sys/fs/bpf/xdp_filter type xdp" };
            var maps = InMemoryFilterMap.FilterMaps();
            var state = new FilterState(name => new RecordingMap(maps[name], commands));
            state.Policy = policy;
            var ids = rules.Select(state.Add).ToList();
            for (var i = 0; i < frames.Count; i++)
            {
                var path = Path.Combine(dir.FullName, $"frame{i}.bin");
                File.WriteAllBytes(path, frames[i]);
                commands.Add($"prog run pinned /sys/fs/bpf/xdp_filter data_in {path}");
            }
            foreach (var id in ids)
                commands.Add($"map lookup pinned /sys/fs/bpf/{FilterState.HitsMap} key {Hex(BitConverter.GetBytes(id))}");
            commands.Add($"map lookup pinned /sys/fs/bpf/{FilterState.StatsMap} key {Hex(BitConverter.GetBytes(1))}");
            commands.Add($"map lookup pinned /sys/fs/bpf/{FilterState.StatsMap} key {Hex(BitConverter.GetBytes(2))}");
            var batch = Path.Combine(dir.FullName, "batch");
            File.WriteAllLines(batch, commands);

            var outputs = RunBatch(batch, commands.Count);
            var actions = outputs.Skip(commands.Count - frames.Count - ids.Count - 2).Take(frames.Count)
                .Select(o => o.GetProperty("retval").GetInt32()).ToArray();
            var counters = outputs.Skip(commands.Count - ids.Count - 2).Select(Sum).ToList();
            return new Result(actions, [.. counters.Take(ids.Count).Select(c => c.Packets)], counters[^2], counters[^1]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static string ObjectPath => FilterPaths.ProgramObject("xdp_filter.o");

    private static List<JsonElement> RunBatch(string batch, int expected)
    {
        var start = new ProcessStartInfo("unshare", ["-m", "sh", "-c", "mount -t bpf bpf /sys/fs/bpf && exec bpftool -j batch file \"$0\"", batch])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("bpftool batch did not finish in 60 s");
        }
        // bpftool prints one JSON array with an element a command (and a spurious error element at the end of the
        // file on some versions); a failing command ends the batch early.
        using var json = JsonDocument.Parse(stdout);
        var items = json.RootElement.EnumerateArray().ToList();
        var outputs = items.Where(i => i.TryGetProperty("command", out _)).Select(i => i.GetProperty("output").Clone()).ToList();
        if (outputs.Count < expected)
        {
            var error = items.FirstOrDefault(i => i.TryGetProperty("error", out _));
            Assert.Fail($"bpftool ran {outputs.Count} of {expected} commands: {error} {stderr.Result}");
        }
        return outputs;
    }

    private static FilterCounter Sum(JsonElement lookup)
    {
        ulong packets = 0, bytes = 0;
        foreach (var cpu in lookup.GetProperty("formatted").GetProperty("values").EnumerateArray())
        {
            packets += cpu.GetProperty("value").GetProperty("packets").GetUInt64();
            bytes += cpu.GetProperty("value").GetProperty("bytes").GetUInt64();
        }
        return new FilterCounter(packets, bytes);
    }

    private static string Hex(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder("hex");
        foreach (var b in bytes)
            text.Append(' ').Append(b.ToString("x2", CultureInfo.InvariantCulture));
        return text.ToString();
    }

    private static string? Which(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    /// <summary>Keeps the state in memory (the kernel's maps start empty) and turns every write into a bpftool command.</summary>
    private sealed class RecordingMap(InMemoryFilterMap inner, List<string> commands) : IFilterMap
    {
        public string Name => inner.Name;
        public int KeySize => inner.KeySize;
        public int UserValueSize => inner.UserValueSize;
        public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => inner.TryLookup(key, value);
        public bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => inner.TryGetNextKey(key, nextKey);

        public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            inner.Update(key, value);
            // bpftool writes one value to every CPU of a per-CPU map; the filter only ever writes zeros there.
            var perCpu = Name is FilterState.HitsMap or FilterState.StatsMap;
            Assert.True(!perCpu || !value.ContainsAnyExcept((byte)0));
            commands.Add($"map update pinned /sys/fs/bpf/{Name} key {Hex(key)} value {Hex(perCpu ? value[..16] : value)}");
        }

        public bool Delete(ReadOnlySpan<byte> key)
        {
            commands.Add($"map delete pinned /sys/fs/bpf/{Name} key {Hex(key)}");
            return inner.Delete(key);
        }
    }
}
