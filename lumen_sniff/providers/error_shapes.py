"""Error shapes of the LLM APIs → a short machine-readable ``error_type``.

Each ``ApiFamily`` row names its shape (an ``ErrorShape``: document and response
headers → type). The JSON envelopes most families share are read by
:func:`envelope_error_type`:

==========  ==========================================================  ==================
API         envelope                                                    error_type
==========  ==========================================================  ==================
OpenAI      ``{"error": {"type", "code", "message", "param"}}``         ``code``, else ``type``
Anthropic   ``{"type": "error", "error": {"type", "message"}}``         ``error.type``
Gemini      ``{"error": {"code": 404, "status": "NOT_FOUND", …}}``      ``error.status``
Ollama      ``{"error": "model 'x' not found"}``                        from the HTTP status
Cohere      ``{"id", "message"}``                                       from the HTTP status
Bedrock     header ``x-amzn-ErrorType``, body ``{"message"}``           the header's type
==========  ==========================================================  ==================

OpenAI's ``code`` is preferred because its ``type`` is often vague (a 429 has
``"type": "tokens"`` and ``"code": "rate_limit_exceeded"``). Messages are never
used: they can quote the request.
"""

from __future__ import annotations

from typing import Any

from lumen_sniff.model import Headers

__all__ = [
    "aws_error",
    "envelope_error_type",
    "json_envelope",
    "status_error_type",
    "status_only",
]

_BY_STATUS = {
    400: "bad_request",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    408: "timeout",
    409: "conflict",
    413: "request_too_large",
    422: "unprocessable_entity",
    429: "rate_limit",
    500: "server_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
    529: "overloaded_error",
}
_MAX_LEN = 64


def status_error_type(status: int) -> str:
    """A generic error type for an HTTP status without a usable envelope."""
    return _BY_STATUS.get(status, f"http_{status}")


def envelope_error_type(doc: Any) -> str | None:
    """The error type an error document names, or None when it is not one.

    Args:
        doc: A parsed JSON document or stream record.

    Returns:
        A short type string, or None.
    """
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if isinstance(err, dict):
        for key in ("status", "code", "type"):
            value = err.get(key)
            if key == "status" and not isinstance(value, str):
                continue
            if isinstance(value, str) and value and not value.isdigit():
                return value[:_MAX_LEN]
        code = err.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            return status_error_type(code)
        return "error"
    if isinstance(err, str) and err:
        return "error"
    if doc.get("type") == "error":
        return "error"
    return None


def json_envelope(doc: Any, headers: Headers) -> str | None:
    """``ErrorShape`` of the JSON envelopes above (headers are not needed)."""
    return envelope_error_type(doc)


def status_only(doc: Any, headers: Headers) -> str | None:
    """``ErrorShape`` of APIs whose error body is only a message (Cohere): the
    extractor types the error from the HTTP status."""
    return None


def aws_error(doc: Any, headers: Headers) -> str | None:
    """``ErrorShape`` of AWS JSON services (Bedrock Runtime).

    The type is the ``x-amzn-errortype`` header (``ThrottlingException:http://…``,
    cut at the first colon), else the body's ``__type`` (``…#ValidationException``,
    cut after the last ``#``); the body's ``message`` is never used.
    """
    for name, value in headers:
        if name == "x-amzn-errortype" and value:
            return value.partition(":")[0].strip()[:_MAX_LEN] or None
    if isinstance(doc, dict):
        kind = doc.get("__type")
        if isinstance(kind, str) and kind:
            return kind.rpartition("#")[2][:_MAX_LEN]
    return None
