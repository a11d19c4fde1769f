using LlmServer.Operations.ModelDownload;

namespace LlmServer.Tests.Operations;

/// <summary>The <c>Model:Download</c> section's validator reports every problem at once, before anything is downloaded.</summary>
public sealed class ModelDownloadOptionsValidatorTests
{
    private const string Sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    [Fact]
    public void Every_problem_is_reported_and_the_defaults_pass()
    {
        var result = new ModelDownloadOptionsValidator().Validate(null, new ModelDownloadOptions
        {
            Url = "ftp://example.com/model.gguf",
            Sha256 = "9f86d081",
            FileName = "../model.gguf",
            Directory = " ",
            Attempts = 0,
            StallSeconds = 0,
        });

        Assert.True(result.Failed);
        Assert.Equal(6, result.Failures!.Count());
        Assert.Contains(result.Failures!, f => f.StartsWith("Model:Download:Sha256 '9f86d081' must be 64 hexadecimal digits", StringComparison.Ordinal));
        Assert.True(new ModelDownloadOptionsValidator().Validate(null, new ModelDownloadOptions()).Succeeded);
    }

    [Theory]
    [InlineData(Sha256, true)]
    [InlineData(" " + Sha256 + " ", true)]
    [InlineData("", true)]
    [InlineData("sha256:" + Sha256, false)]
    [InlineData(Sha256 + "0", false)]
    [InlineData("zf86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", false)]
    public void A_sha256_is_64_hexadecimal_digits_or_nothing(string sha256, bool valid) =>
        Assert.Equal(valid, new ModelDownloadOptionsValidator().Validate(null, new ModelDownloadOptions { Sha256 = sha256 }).Succeeded);

    [Fact]
    public void A_disabled_download_leaves_its_own_settings_unchecked_but_not_the_models_folder()
    {
        var disabled = new ModelDownloadOptions { Enabled = false, Url = "not a url", Sha256 = "xyz", Directory = "" };

        var result = new ModelDownloadOptionsValidator().Validate(null, disabled);

        Assert.StartsWith("Model:Download:Directory", Assert.Single(result.Failures!), StringComparison.Ordinal);
    }
}
