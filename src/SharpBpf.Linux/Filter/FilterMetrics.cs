using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Filter;

/// <summary>The filter's counters in the Prometheus text exposition format (version 0.0.4).</summary>
public static class FilterMetrics
{
    /// <summary>The content type of <see cref="Format"/>'s output.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Writes per-action and per-rule counters, the rule count and the policy.</summary>
    public static string Format(FilterStatistics statistics, IReadOnlyList<FilterRuleStatus> rules, FilterPolicy policy, string? iface = null)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        ArgumentNullException.ThrowIfNull(rules);
        var text = new StringBuilder();
        var scope = iface is null ? "" : $"interface=\"{Escape(iface)}\",";

        Header(text, "sharpbpf_filter_packets_total", "counter", "Packets the XDP filter returned each action for.");
        foreach (var (action, counter) in statistics.Actions.OrderBy(a => a.Key))
            Line(text, "sharpbpf_filter_packets_total", $"{scope}action=\"{ActionName(action)}\"", counter.Packets);
        Header(text, "sharpbpf_filter_bytes_total", "counter", "Bytes of the packets the XDP filter returned each action for.");
        foreach (var (action, counter) in statistics.Actions.OrderBy(a => a.Key))
            Line(text, "sharpbpf_filter_bytes_total", $"{scope}action=\"{ActionName(action)}\"", counter.Bytes);

        Header(text, "sharpbpf_filter_rule_packets_total", "counter", "Packets each filter rule matched.");
        foreach (var rule in rules)
            Line(text, "sharpbpf_filter_rule_packets_total", RuleLabels(scope, rule), rule.Packets);
        Header(text, "sharpbpf_filter_rule_bytes_total", "counter", "Bytes of the packets each filter rule matched.");
        foreach (var rule in rules)
            Line(text, "sharpbpf_filter_rule_bytes_total", RuleLabels(scope, rule), rule.Bytes);

        Header(text, "sharpbpf_filter_rules", "gauge", "Rules the filter holds.");
        Line(text, "sharpbpf_filter_rules", scope.TrimEnd(','), (ulong)rules.Count);
        Header(text, "sharpbpf_filter_default_deny", "gauge", "1 when packets no rule decides are dropped, 0 when they pass.");
        Line(text, "sharpbpf_filter_default_deny", scope.TrimEnd(','), policy == FilterPolicy.Deny ? 1UL : 0UL);
        return text.ToString();
    }

    /// <summary>Lower-case action name: aborted, drop, pass, tx, redirect.</summary>
    public static string ActionName(XdpAction action) => action.ToString().ToLowerInvariant();

    private static string RuleLabels(string scope, FilterRuleStatus rule) =>
        $"{scope}id=\"{rule.Id.ToString(CultureInfo.InvariantCulture)}\",rule=\"{Escape(rule.Rule.ToString())}\"";

    private static void Header(StringBuilder text, string name, string type, string help) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
            .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Line(StringBuilder text, string name, string labels, ulong value)
    {
        text.Append(name);
        if (labels.Length > 0)
            text.Append('{').Append(labels).Append('}');
        text.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    private static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}

/// <summary>
/// A very small HTTP server for Prometheus scrapes: answers every GET with the text a callback produces. It is a
/// plain TCP listener (no HttpListener prefixes or URL ACLs to set up), one request a connection, bounded in size
/// and time, meant for a loopback or a trusted address.
/// </summary>
public sealed class MetricsServer : IAsyncDisposable
{
    private readonly TcpListener listener;
    private readonly Func<string> render;
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;

    private MetricsServer(TcpListener listener, Func<string> render)
    {
        this.listener = listener;
        this.render = render;
        loop = Task.Run(AcceptLoop);
    }

    /// <summary>The address and port the server listens on (the real port when 0 was asked for).</summary>
    public IPEndPoint EndPoint => (IPEndPoint)listener.LocalEndpoint;

    /// <summary>Starts listening on <paramref name="address"/> ("127.0.0.1:9435", "[::1]:9435", "localhost:9435").</summary>
    public static MetricsServer Start(string address, Func<string> render)
    {
        ArgumentNullException.ThrowIfNull(render);
        var endPoint = ParseEndPoint(address);
        var listener = new TcpListener(endPoint);
        try
        {
            listener.Start();
        }
        catch (SocketException e)
        {
            throw new BpfException($"metrics: cannot listen on {address}: {e.Message}", e);
        }
        return new MetricsServer(listener, render);
    }

    /// <summary>Parses ADDRESS:PORT; "localhost" means 127.0.0.1.</summary>
    public static IPEndPoint ParseEndPoint(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var text = address.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase) ? "127.0.0.1" + address[9..] : address;
        if (!IPEndPoint.TryParse(text, out var endPoint) || !text.Contains(':', StringComparison.Ordinal) || endPoint.Port == 0 && !text.EndsWith(":0", StringComparison.Ordinal))
            throw new BpfException($"metrics: '{address}' is not ADDRESS:PORT (for example 127.0.0.1:9435)");
        return endPoint;
    }

    private async Task AcceptLoop()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            try
            {
                var stream = client.GetStream();
                var request = new byte[8192];
                var length = 0;
                // Read the request head (up to the blank line); the body of a GET is empty.
                while (length < request.Length)
                {
                    var read = await stream.ReadAsync(request.AsMemory(length), timeout.Token);
                    if (read == 0)
                        break;
                    length += read;
                    if (request.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0)
                        break;
                }
                var head = Encoding.ASCII.GetString(request, 0, length);
                string status, contentType, body;
                if (head.StartsWith("GET ", StringComparison.Ordinal))
                {
                    try
                    {
                        (status, contentType, body) = ("200 OK", FilterMetrics.ContentType, render());
                    }
                    catch (BpfException e)
                    {
                        (status, contentType, body) = ("503 Service Unavailable", "text/plain; charset=utf-8", e.Message + "\n");
                    }
                }
                else
                {
                    (status, contentType, body) = ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n");
                }
                var payload = Encoding.UTF8.GetBytes(body);
                var header = Encoding.ASCII.GetBytes(
                    $"HTTP/1.1 {status}\r\nContent-Type: {contentType}\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n\r\n");
                await stream.WriteAsync(header, timeout.Token);
                await stream.WriteAsync(payload, timeout.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
            {
                // A client that goes away or stalls costs only its own connection.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Stop();
        await loop;
        stop.Dispose();
    }
}
