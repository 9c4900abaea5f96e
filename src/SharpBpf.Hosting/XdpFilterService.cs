using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SharpBpf.Linux.Filter;

namespace SharpBpf.Hosting;

/// <summary>
/// Keeps the XDP filter attached while the application runs: on start it applies the configured policy and rules,
/// attaches to every configured interface and starts the metrics endpoint; on stop it stops the endpoint and
/// detaches (unless <see cref="XdpFilterOptions.DetachOnStop"/> is false). A failure to attach fails the start, so
/// an application that needs its firewall does not run without it.
/// </summary>
public sealed class XdpFilterService(XdpFilter filter, IOptions<XdpFilterOptions> options, ILogger<XdpFilterService> logger) : IHostedService, IAsyncDisposable
{
    private readonly XdpFilterOptions settings = options.Value;
    private readonly List<string> attached = [];
    private MetricsServer? metrics;

    /// <summary>The metrics endpoint while the service runs.</summary>
    public System.Net.IPEndPoint? MetricsEndPoint => metrics?.EndPoint;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (settings.Policy is { } policy)
            filter.Policy = policy;
        foreach (var rule in settings.Rules)
            logger.LogInformation("XDP filter rule #{Id}: {Rule}", filter.Add(rule), rule);
        try
        {
            foreach (var name in settings.Interfaces)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var attachment = filter.Attach(name, settings.Mode);
                attached.Add(name);
                logger.LogInformation("XDP filter attached to {Interface} ({Mode})", attachment.Interface, attachment.Mode);
            }
            if (settings.MetricsAddress is { } address)
            {
                metrics = MetricsServer.Start(address, () => FilterMetrics.Format(filter.ReadStatistics(), filter.ListRules(), filter.Policy));
                logger.LogInformation("XDP filter metrics on http://{EndPoint}/metrics", metrics.EndPoint);
            }
        }
        catch
        {
            DetachAll();
            throw;
        }
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Detach first, on the calling thread: interfaces are named in that thread's network namespace.
        if (settings.DetachOnStop)
            DetachAll();
        if (metrics is not null)
        {
            await metrics.DisposeAsync();
            metrics = null;
        }
    }

    private void DetachAll()
    {
        foreach (var name in attached)
        {
            try
            {
                filter.Detach(name);
                logger.LogInformation("XDP filter detached from {Interface}", name);
            }
            catch (BpfException e)
            {
                logger.LogWarning("XDP filter: detach from {Interface} failed: {Message}", name, e.Message);
            }
        }
        attached.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        if (metrics is not null)
            await metrics.DisposeAsync();
    }
}
