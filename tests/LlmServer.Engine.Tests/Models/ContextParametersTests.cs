using LlmServer.Engine.Models;
using LlmServer.Engine.Scheduling;

namespace LlmServer.Engine.Tests.Models;

/// <summary>Flash attention as the context is built: the setting, else on for a quantized KV cache, else llama.cpp's choice.</summary>
public sealed class ContextParametersTests
{
    [Theory]
    [InlineData("f16", null, null)]
    [InlineData("q8_0", null, true)]
    [InlineData("f16", true, true)]
    [InlineData("f16", false, false)]
    public void Flash_attention_is_llama_cpps_choice_unless_set_or_needed_by_a_quantized_cache(
        string kvCacheType, bool? setting, bool? expected)
    {
        var model = new ModelOptions { Path = "model.gguf", GpuLayerCount = 0 };
        var scheduler = new SchedulerOptions { KvCacheType = kvCacheType, FlashAttention = setting };

        var parameters = ModelLoader.CreateParameters(model, scheduler, trainingContext: 0);

        Assert.Equal(expected, parameters.FlashAttention);
    }
}
