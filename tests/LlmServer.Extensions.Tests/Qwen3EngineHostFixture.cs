using LlmServer.Testing;

namespace LlmServer.Extensions.Tests;

/// <summary>The engine host with Qwen3's chat template: a reasoning model's prompt and output shape.</summary>
public sealed class Qwen3EngineHostFixture() : EngineHostFixture(Path.Combine(ChatTemplateFixtures.Root, "templates", "Qwen-Qwen3-0.6B.jinja"));
