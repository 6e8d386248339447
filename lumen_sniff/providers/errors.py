"""Error envelopes of the LLM APIs → a short machine-readable ``error_type``.

==========  ==========================================================  ==================
API         envelope                                                    error_type
==========  ==========================================================  ==================
OpenAI      ``{"error": {"type", "code", "message", "param"}}``         ``code``, else ``type``
Anthropic   ``{"type": "error", "error": {"type", "message"}}``         ``error.type``
Gemini      ``{"error": {"code": 404, "status": "NOT_FOUND", …}}``      ``error.status``
Ollama      ``{"error": "model 'x' not found"}``                        from the HTTP status
==========  ==========================================================  ==================

OpenAI's ``code`` is preferred because its ``type`` is often vague (a 429 has
``"type": "tokens"`` and ``"code": "rate_limit_exceeded"``). Messages are never
used: they can quote the request.
"""

from __future__ import annotations

from typing import Any

__all__ = ["envelope_error_type", "status_error_type"]

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
