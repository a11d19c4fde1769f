namespace LlmServer.Operations.ModelDownload;

/// <summary>A download that cannot complete; the message says why in words an operator can act on.</summary>
public sealed class ModelDownloadException : Exception
{
    public ModelDownloadException()
    {
    }

    public ModelDownloadException(string message)
        : base(message)
    {
    }

    public ModelDownloadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
