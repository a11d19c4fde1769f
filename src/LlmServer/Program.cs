using LlmServer.Hosting;

var app = ServerApplication.Build(args);
if (app is null)
{
    return 2;
}

await app.RunAsync();
return 0;
