using SharpBpf.Cli;

return await CliApp.RunAsync(args);
