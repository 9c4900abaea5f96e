using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SharpBpf.Linux.Filter;

namespace SharpBpf.Hosting;

public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers the XDP filter (an <see cref="XdpFilter"/> singleton over the pinned state, for the application to
    /// manage rules at run time) and <see cref="XdpFilterService"/>, which keeps it attached while the host runs.
    /// </summary>
    public static IServiceCollection AddXdpFilter(this IServiceCollection services, Action<XdpFilterOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<XdpFilterOptions>();
        if (configure is not null)
            options.Configure(configure);
        services.AddSingleton(provider => XdpFilter.Open(provider.GetRequiredService<IOptions<XdpFilterOptions>>().Value.PinDirectory));
        services.AddSingleton<XdpFilterService>();
        services.AddHostedService(provider => provider.GetRequiredService<XdpFilterService>());
        return services;
    }
}
