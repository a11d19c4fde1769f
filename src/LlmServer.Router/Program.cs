using LlmServer.Router.Hosting;

var app = RouterApplication.Build(args);
await app.RunAsync();
