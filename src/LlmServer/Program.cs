using LlmServer.Hosting;

return await ServerApplication.RunAsync(args);
