using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace LlmServer.Operations.Auth;

/// <summary>
/// The accepted API keys (from <c>Auth:ApiKeys</c> and <c>Auth:ApiKeysFile</c>), kept only as SHA-256 hashes.
/// Each key has a stable id derived from its hash, so owners and logs never carry the key itself.
/// </summary>
internal sealed class ApiKeyStore
{
    /// <summary>The name every caller gets when no keys are configured (single-user, loopback mode).</summary>
    public const string AnonymousName = "anonymous";

    private readonly Dictionary<string, string> _keyIdsByHash;

    public ApiKeyStore(IOptions<ApiKeyOptions> options)
    {
        _keyIdsByHash = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in ReadKeys(options.Value))
        {
            var hash = Hash(key);
            _keyIdsByHash[hash] = "key-" + hash[..12];
        }
    }

    /// <summary>True when at least one key is configured.</summary>
    public bool RequiresKeys => _keyIdsByHash.Count > 0;

    public int Count => _keyIdsByHash.Count;

    /// <summary>Finds the id of <paramref name="presentedKey"/>; comparing hashes keeps the lookup independent of how much of a key matched.</summary>
    public bool TryGetKeyId(string presentedKey, out string keyId)
        => _keyIdsByHash.TryGetValue(Hash(presentedKey), out keyId!);

    /// <summary>Every configured key, trimmed, from the list and the file (one per line, <c>#</c> comments).</summary>
    public static IEnumerable<string> ReadKeys(ApiKeyOptions options)
    {
        foreach (var key in options.ApiKeys)
        {
            if (!string.IsNullOrWhiteSpace(key))
            {
                yield return key.Trim();
            }
        }

        if (string.IsNullOrWhiteSpace(options.ApiKeysFile) || !File.Exists(options.ApiKeysFile))
        {
            yield break;
        }

        foreach (var line in File.ReadLines(options.ApiKeysFile))
        {
            var key = line.Trim();
            if (key.Length > 0 && !key.StartsWith('#'))
            {
                yield return key;
            }
        }
    }

    private static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
