using LlmServer.Testing;
using LlmServer.Tests.Infrastructure;
using Microsoft.Playwright;

namespace LlmServer.Web.Tests.Infrastructure;

/// <summary>
/// One real server (stories260K, its own session database) and one headless Chromium for a test class.
/// The browser is the system's Chromium (Debian's package); Playwright never downloads one.
/// </summary>
public sealed class ChatPageFixture : IAsyncLifetime
{
    public const string ChromiumVariable = "LLMSERVER_TEST_CHROMIUM";
    private const string DefaultChromium = "/usr/bin/chromium";

    private readonly string _dataFolder = Path.Combine(Path.GetTempPath(), "llmserver-web-tests-" + Guid.NewGuid().ToString("N"));
    private IPlaywright? _playwright;
    private IBrowser? _browser;
    private TestServer? _server;

    public TestServer Server => _server ?? throw new InvalidOperationException("Not started.");

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("Not started.");

    /// <summary>Where screenshots go: artifacts/web-ui under the repository root (git-ignored).</summary>
    public static string ArtifactsFolder => Directory.CreateDirectory(Path.Combine(TestModels.RepositoryRoot, "artifacts", "web-ui")).FullName;

    public async Task InitializeAsync()
    {
        var chromium = Environment.GetEnvironmentVariable(ChromiumVariable) is { Length: > 0 } configured ? configured : DefaultChromium;
        if (!File.Exists(chromium))
        {
            throw new FileNotFoundException(
                $"Chromium not found at {chromium}. Install Debian's package (apt-get install -y chromium) or set {ChromiumVariable}.");
        }

        Directory.CreateDirectory(_dataFolder);
        _server = await TestServer.StartAsync(extraArgs:
        [
            "--Sessions:Database=" + Path.Combine(_dataFolder, "sessions.db"),
            // Two slots of 1024 tokens: room for a long answer to stop or resume part-way.
            "--Scheduler:Slots=2",
        ]);

        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Args =
            [
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-quic",
                "--disable-sync",
            ],
        });
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.CloseAsync();
        }

        _playwright?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        Directory.Delete(_dataFolder, recursive: true);
    }
}
