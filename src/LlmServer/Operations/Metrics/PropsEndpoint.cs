using System.Text.Json;
using LlmServer.Engine.Generation;
using LlmServer.Engine.Tools;
using LlmServer.Errors;
using Microsoft.Extensions.Options;
using SessionOptions = LlmServer.Sessions.SessionOptions;

namespace LlmServer.Operations.Metrics;

/// <summary>
/// <c>GET /props</c>, as llama-server has it: the backend, slots and context per slot, the model's metadata and the
/// build, the sampling limits the engine accepts and the sessions' text limits (the chat page checks against them). 503
/// while the model loads.
/// </summary>
internal static class PropsEndpoint
{
    public static IEndpointRouteBuilder MapProps(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/props", (HttpContext context, ITextGenerator generator, IOptions<SessionOptions> sessions) => WriteAsync(context, generator, sessions.Value));
        return endpoints;
    }

    private static async Task WriteAsync(HttpContext context, ITextGenerator generator, SessionOptions sessions)
    {
        var model = generator.Model;
        if (model is null)
        {
            var refusal = new Refusal(RefusalKind.Unavailable, $"The model is not loaded (engine {generator.State.ToString().ToLowerInvariant()}).", "model_not_loaded")
            {
                RetryAfter = TimeSpan.FromSeconds(1),
            };
            await context.RefuseAsync(refusal, context.RequestAborted);
            return;
        }

        var status = generator.GetStatus();
        var props = new Dictionary<string, object?>
        {
            ["model_alias"] = model.Id,
            ["model_path"] = model.Path,
            ["total_slots"] = status.Slots,
            ["n_ctx"] = status.SlotContextLength,
            ["n_ctx_total"] = (long)status.Slots * status.SlotContextLength,
            ["state"] = generator.State.ToString().ToLowerInvariant(),
            ["slots_running"] = status.Running,
            ["requests_waiting"] = status.Waiting,
            ["kv_cache_usage"] = status.KvCacheUsage,
            ["kv_cache_reusable"] = status.KvCacheReusable,
            ["backend"] = new Dictionary<string, object?>
            {
                ["kind"] = model.Backend.Kind,
                ["library"] = model.Backend.Library,
                ["system_info"] = model.Backend.SystemInfo,
                ["gpu_layers"] = model.Backend.GpuLayers,
                ["threads"] = model.Backend.Threading?.CurrentThreads ?? model.Backend.Threads,
                ["threading"] = model.Backend.Threading is { } threading ? new Dictionary<string, object?>
                {
                    ["threads_setting"] = threading.ThreadsSetting,
                    ["batch_threads_setting"] = threading.BatchThreadsSetting,
                    ["threads"] = threading.CurrentThreads,
                    ["threads_max"] = threading.Threads,
                    ["batch_threads"] = threading.BatchThreads,
                    ["adaptive"] = threading.Adaptive,
                    ["changes"] = threading.Changes,
                    ["decode_thread_cpu_share"] = threading.Adaptive ? Math.Round(threading.CpuShare, 3) : null,
                    ["other_processes_cores"] = double.IsNaN(threading.OtherProcessesCores) ? null : Math.Round(threading.OtherProcessesCores, 2),
                    ["openmp"] = threading.OpenMp,
                    ["reason"] = threading.Reason,
                } : null,
            },
            ["model"] = new Dictionary<string, object?>
            {
                ["id"] = model.Id,
                ["name"] = model.Name,
                ["architecture"] = model.Architecture,
                ["n_params"] = model.ParameterCount,
                ["size"] = model.SizeInBytes,
                ["n_ctx_train"] = model.TrainingContextLength,
                ["n_vocab"] = model.VocabularySize,
                ["has_chat_template"] = model.HasChatTemplate,
            },
            ["limits"] = new Dictionary<string, object?>
            {
                ["temperature"] = RangeOf(GenerationLimits.Temperature),
                ["top_p"] = RangeOf(GenerationLimits.TopP),
                ["max_tokens"] = RangeOf(GenerationLimits.MaxTokens),
                // In TextLength's characters (Unicode scalar values), which a browser's maxlength does not count.
                ["title_length"] = sessions.MaxTitleLength,
                ["message_length"] = sessions.MaxMessageLength,
                ["system_prompt_length"] = sessions.MaxSystemPromptLength,
            },
            ["chat_template"] = model.ChatTemplate?.Source,
            ["chat_template_source"] = model.ChatTemplate is { } template
                ? new Dictionary<string, object?> { ["origin"] = template.Origin, ["name"] = template.Name }
                : null,
            ["chat_template_caps"] = model.ChatTemplate?.Capabilities is { } caps
                ? new Dictionary<string, object?>
                {
                    ["supports_system_role"] = caps.SupportsSystemRole,
                    ["supports_tools"] = caps.SupportsTools,
                    ["supports_tool_calls"] = caps.SupportsToolCalls,
                    ["supports_parallel_tool_calls"] = caps.SupportsParallelToolCalls,
                    ["supports_object_arguments"] = caps.SupportsObjectArguments,
                    ["supports_string_content"] = caps.SupportsStringContent,
                    ["supports_typed_content"] = caps.SupportsTypedContent,
                    ["supports_preserve_reasoning"] = caps.SupportsPreserveReasoning,
                    ["supports_thinking"] = caps.SupportsThinking,
                }
                : null,
            ["tool_call_format"] = ToolCallFormats.Name(model.ToolCallFormat),
            ["template_tool_call_format"] = ToolCallFormats.Name(model.TemplateToolCallFormat),
            ["build_info"] = BuildInfo.Version,
        };
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.WriteAsJsonAsync(props, JsonSerializerOptions.Web, context.RequestAborted);
    }

    /// <summary>JSON Schema's words for a range: <c>minimum</c> or <c>exclusive_minimum</c>, <c>maximum</c>; open ends left out.</summary>
    private static Dictionary<string, double> RangeOf(ValueRange range)
    {
        var json = new Dictionary<string, double>();
        if (range.Minimum is { } min)
        {
            json[range.ExclusiveMinimum ? "exclusive_minimum" : "minimum"] = min;
        }

        if (range.Maximum is { } max)
        {
            json["maximum"] = max;
        }

        return json;
    }
}
