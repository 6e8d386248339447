"""A small client of the daemon's HTTP API, shared by the CLI commands.

The CLI never opens the database behind the daemon's back: everything it shows
comes from the API, so it works the same against a remote daemon.
"""

from __future__ import annotations

import os
from typing import Any

import click
import httpx

from lumen_sniff.config import DEFAULT_PORT

__all__ = ["ApiClient", "api_options"]

_DEFAULT_API = f"http://127.0.0.1:{DEFAULT_PORT}"


class ApiClient:
    """Synchronous JSON client for one daemon."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._base = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self._base, headers=headers, timeout=timeout_s)

    @property
    def base_url(self) -> str:
        """The daemon's API base URL."""
        return self._base

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with the non-None ``params``; return the decoded JSON."""
        return self._check(self._http.get(path, params=_clean(params))).json()

    def get_text(self, path: str, **params: Any) -> str:
        """GET ``path`` and return the body as text (CSV export)."""
        return self._check(self._http.get(path, params=_clean(params))).text

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body; return the decoded JSON."""
        return self._check(self._http.post(path, json=body)).json()

    def delete(self, path: str) -> Any:
        """DELETE ``path``; return the decoded JSON."""
        return self._check(self._http.delete(path)).json()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 401:
            raise click.ClickException(
                f"{self._base}: 401 unauthorised — pass --token or set LUMEN_TOKEN"
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise click.ClickException(f"{self._base}: HTTP {response.status_code}: {detail}")
        return response


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def api_options(func: Any) -> Any:
    """Add ``--api`` and ``--token`` to a command and pass an ApiClient as ``api``."""

    @click.option(
        "--api",
        "api_url",
        default=lambda: os.environ.get("LUMEN_API", _DEFAULT_API),
        show_default=_DEFAULT_API,
        help="Base URL of the daemon's API (env LUMEN_API).",
    )
    @click.option(
        "--token",
        default=lambda: os.environ.get("LUMEN_TOKEN"),
        help="Bearer token when the API needs one (env LUMEN_TOKEN).",
    )
    @click.pass_context
    def wrapper(ctx: click.Context, /, api_url: str, token: str | None, **kwargs: Any) -> Any:
        client = ApiClient(api_url, token)
        try:
            return ctx.invoke(func, api=client, **kwargs)
        except httpx.TransportError as exc:
            raise click.ClickException(
                f"cannot reach the lumen-sniff API at {api_url}: {exc}. "
                "Is the daemon running (lumen-sniff run)?"
            ) from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper
