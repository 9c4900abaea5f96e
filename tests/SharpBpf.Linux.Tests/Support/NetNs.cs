using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>
/// A named network namespace made for one test (<c>/var/run/netns/NAME</c>) with a dedicated thread that has
/// entered it. Code given to <see cref="Run{T}"/> runs on that thread, so every socket it opens and every ifindex
/// it names belongs to this namespace, while the mount namespace (and /sys/fs/bpf) stays the process's own
/// (<c>ip netns exec</c> would remount /sys and hide bpffs).
/// </summary>
public sealed class NetNs : IDisposable
{
    /// <summary>Every namespace, bpffs dir and process of the fixture carries this prefix and the owner's pid.</summary>
    public const string Prefix = "sbpft-";

    private static int s_counter;
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;
    private bool _disposed;

    private NetNs(string name)
    {
        Name = name;
        Path = "/var/run/netns/" + name;
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _thread = new Thread(() => Loop(entered)) { IsBackground = true, Name = "netns " + name };
        _thread.Start();
        entered.Task.GetAwaiter().GetResult();
    }

    /// <summary>The namespace's name, e.g. <c>sbpft-1234-1</c>.</summary>
    public string Name { get; }

    /// <summary>The namespace's bind-mount, usable with setns(2).</summary>
    public string Path { get; }

    /// <summary>Creates a fresh namespace with a uniquely named entry; removes leftovers of dead test runs first.</summary>
    public static NetNs Create()
    {
        RemoveLeftovers();
        var name = $"{Prefix}{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";
        Ip.Run("netns", "add", name);
        try
        {
            return new NetNs(name);
        }
        catch
        {
            Ip.TryRun("netns", "del", name);
            throw;
        }
    }

    /// <summary>Runs <paramref name="action"/> on the thread inside the namespace and waits for it.</summary>
    public void Run(Action action) => Run<object?>(() => { action(); return null; });

    /// <summary>Runs <paramref name="func"/> on the thread inside the namespace and returns its result.</summary>
    public T Run<T>(Func<T> func)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Thread.CurrentThread == _thread)
            return func();
        T result = default!;
        ExceptionDispatchInfo? error = null;
        using var done = new ManualResetEventSlim();
        _work.Add(() =>
        {
            try { result = func(); }
            catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
            finally { done.Set(); }
        });
        done.Wait();
        error?.Throw();
        return result;
    }

    /// <summary>Starts <paramref name="func"/> on a new thread that enters this namespace (for concurrent work).</summary>
    public Task<T> RunConcurrently<T>(Func<T> func)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                Enter(Path);
                tcs.SetResult(func());
            }
            catch (Exception e) { tcs.SetException(e); }
        }) { IsBackground = true, Name = "netns worker " + Name };
        thread.Start();
        return tcs.Task;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _work.CompleteAdding();
        _thread.Join(TimeSpan.FromSeconds(10));
        _work.Dispose();
        // Deleting the namespace destroys its veths, which detaches every XDP program and link on them.
        Ip.TryRun("netns", "del", Name);
    }

    private void Loop(TaskCompletionSource entered)
    {
        try
        {
            Enter(Path);
            entered.SetResult();
        }
        catch (Exception e)
        {
            entered.SetException(e);
            return;
        }
        foreach (var item in _work.GetConsumingEnumerable())
            item();
    }

    /// <summary>Moves the calling thread (only it) into the network namespace at <paramref name="path"/>.</summary>
    internal static void Enter(string path)
    {
        var fd = TestLibc.open(path, TestLibc.O_RDONLY | TestLibc.O_CLOEXEC);
        if (fd < 0)
            throw new InvalidOperationException($"open {path}: {TestLibc.LastError()}");
        try
        {
            if (TestLibc.setns(fd, TestLibc.CLONE_NEWNET) != 0)
                throw new InvalidOperationException($"setns {path}: {TestLibc.LastError()}");
        }
        finally
        {
            TestLibc.close(fd);
        }
    }

    /// <summary>Deletes namespaces with our prefix whose owning process no longer runs (a crashed earlier run).</summary>
    internal static void RemoveLeftovers()
    {
        if (!Directory.Exists("/var/run/netns"))
            return;
        foreach (var entry in Directory.EnumerateFileSystemEntries("/var/run/netns", Prefix + "*"))
        {
            var name = System.IO.Path.GetFileName(entry);
            if (OwnerIsGone(name))
                Ip.TryRun("netns", "del", name);
        }
    }

    /// <summary>True when <paramref name="name"/> is <c>PREFIX-PID-N</c> and process PID no longer exists.</summary>
    internal static bool OwnerIsGone(string name)
    {
        var parts = name[Prefix.Length..].Split('-');
        return parts.Length >= 2 && int.TryParse(parts[0], out var pid) && pid != Environment.ProcessId
            && !Directory.Exists($"/proc/{pid}");
    }
}

/// <summary>Runs iproute2's <c>ip</c> for the fixture (never in the library), bounded in time.</summary>
internal static class Ip
{
    public static string Run(params string[] args)
    {
        var (code, output) = Exec(args);
        if (code != 0)
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({code}): {output.Trim()}");
        return output;
    }

    public static bool TryRun(params string[] args) => Exec(args).Code == 0;

    private static (int Code, string Output) Exec(string[] args)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start ip");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(20)))
        {
            process.Kill();
            throw new TimeoutException($"ip {string.Join(' ', args)} did not finish in 20 s");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
