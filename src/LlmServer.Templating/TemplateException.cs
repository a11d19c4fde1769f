namespace LlmServer.Templating;

/// <summary>A template that does not parse or fails while rendering; carries the template line and column.</summary>
public class TemplateException : Exception
{
    /// <summary>An error at a place in the template.</summary>
    public TemplateException(string reason, int line, int column)
        : base($"{reason} (template line {line}, column {column})")
    {
        Reason = reason;
        Line = line;
        Column = column;
    }

    /// <summary>An error with no place.</summary>
    public TemplateException()
        : this("Template error", 0, 0)
    {
    }

    /// <summary>An error with no place.</summary>
    public TemplateException(string message)
        : this(message, 0, 0)
    {
    }

    /// <summary>An error with no place, wrapping another.</summary>
    public TemplateException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = message;
    }

    /// <summary>What went wrong, without the place.</summary>
    public string Reason { get; } = string.Empty;

    /// <summary>1-based line in the template source (0 when unknown).</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source (0 when unknown).</summary>
    public int Column { get; }
}

/// <summary>The template refused the request through <c>raise_exception(message)</c>.</summary>
public sealed class TemplateRaisedException : TemplateException
{
    /// <summary>A refusal at a place in the template.</summary>
    public TemplateRaisedException(string reason, int line, int column)
        : base(reason, line, column)
    {
    }

    /// <summary>A refusal with no place.</summary>
    public TemplateRaisedException()
    {
    }

    /// <summary>A refusal with no place.</summary>
    public TemplateRaisedException(string message)
        : base(message)
    {
    }

    /// <summary>A refusal with no place, wrapping another error.</summary>
    public TemplateRaisedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An error raised below the evaluator, before it knows the place; the evaluator adds it.</summary>
internal sealed class JinjaError(string message, bool raised = false) : Exception(message)
{
    public bool Raised { get; } = raised;
}
