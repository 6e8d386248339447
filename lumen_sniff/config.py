"""TOML config file and command-line values → one validated :class:`Settings`.

Config is validated values and nothing else: loading it creates no directory,
opens no socket and reads no file but the config itself. Side effects belong to
``Daemon.start()``.

Every error names the file, the line (when the value can be found in the text)
and the reason, e.g. ``/etc/lumen-sniff/config.toml:12: [api] listen: port must
be 1-65535, got 70000``.

Example file (every key optional)::

    [api]
    listen = "127.0.0.1:7437"
    token = "change-me"            # required when listen is not loopback

    [store]
    db = "/var/lib/lumen-sniff/lumen.db"
    retention_days = 90
    minute_retention_days = 14     # minute rollups (fine dashboard buckets); 0 = keep

    [capture]
    mode = "auto"                  # auto | bpf | pcap
    pids = []                      # only these processes (eBPF)
    comms = ["python3", "node"]    # only these process names (eBPF)
    exes = []                      # only these executables (eBPF)
    iface = "any"                  # pcap interface
    ports = [11434, 8000, 8080, 1234, 4000]
    bpf_filter = ""                # overrides ports when set
    max_bytes_per_call = 1048576   # eBPF copy cap per SSL call
    bpf_cache_dir = "/var/cache/lumen-sniff/bpf"  # compiled BPF objects ("" = none)
    non_llm_budget_bytes = 32768   # eBPF copy per direction of a non-LLM HTTP/1 connection
    ring_buffer_bytes = 8388608    # eBPF ring buffer (a power of two)

    [providers.hosts]              # host (or host:port) → provider
    "llm-gateway.internal" = "openai"

    [tenants]
    headers = ["x-tenant-id"]

    [prices."my-finetune"]         # USD per million tokens
    provider = "openai"            # optional
    input = 3.0
    output = 12.0
    cache_read = 1.5               # optional, defaults to input
    cache_write = 3.75             # optional, defaults to input

    [otlp]                         # OpenTelemetry export, off by default
    enabled = true
    endpoint = "http://collector.internal:4318"
    protocol = "http/protobuf"     # or "grpc" (endpoint "collector.internal:4317")
    headers = { authorization = "Bearer change-me" }
    resource = { "service.namespace" = "payments", "deployment.environment" = "prod" }

    [redis]                        # Redis Streams, off by default
    enabled = true
    url = "redis://127.0.0.1:6379/0"
    key = "lumen:events:{tenant}"
    maxlen = 100000
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from lumen_sniff.budgets.settings import BudgetSettings, parse_budget_settings
from lumen_sniff.configreader import TomlReader
from lumen_sniff.configsinks import OTLP_KEYS, REDIS_KEYS, otlp_settings, redis_settings
from lumen_sniff.errors import ConfigError
from lumen_sniff.sinks.settings import OtlpSettings, RedisSettings

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DB_PATH",
    "DEFAULT_PCAP_PORTS",
    "DEFAULT_PORT",
    "CaptureSettings",
    "PriceOverride",
    "Settings",
    "is_loopback",
    "load_settings",
    "parse_listen",
]

DEFAULT_CONFIG_PATH = Path("/etc/lumen-sniff/config.toml")
DEFAULT_DB_PATH = Path("/var/lib/lumen-sniff/lumen.db")
DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_PORT = 7437
"""Not used by common server software (unlike 8000, 8080, 9090, 9091, 9100, 9464)."""
DEFAULT_PCAP_PORTS = (11434, 8000, 8080, 1234, 4000)
"""Ollama, vLLM, llama.cpp, LM Studio, LiteLLM and other relays."""

_CAPTURE_MODES = ("auto", "bpf", "pcap")
_BPF_CACHE_DIR = "/var/cache/lumen-sniff/bpf"
_DEPRECATED_CAPTURE = {
    # Accepted so that old config files still load, but said out loud: silently
    # ignoring a key makes its owner believe it still tunes something.
    "poll_timeout_ms": "has no effect since the eBPF ring reader blocks until records "
    "arrive (no polling); remove it",
}
_BUDGET_TABLES = ("budgets", "enforcement", "alerts")
_PRICE_KEYS = ("input", "output", "cache_read", "cache_write")


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceOverride:
    """A user price for one model, in USD per million tokens."""

    model: str
    """Model name it applies to."""
    provider: str | None
    """Provider it applies to; None for any."""
    input_mtok: Decimal
    """Uncached input price."""
    output_mtok: Decimal
    """Output price (reasoning included)."""
    cache_read_mtok: Decimal
    """Cache read price (defaults to the input price)."""
    cache_write_mtok: Decimal
    """Cache write price (defaults to the input price)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaptureSettings:
    """What to capture and how."""

    mode: str = "auto"
    """"auto" (eBPF for TLS plus pcap for plaintext ports), "bpf" or "pcap"."""
    pids: tuple[int, ...] = ()
    """Only these processes (eBPF); empty for all."""
    comms: tuple[str, ...] = ()
    """Only these process names (eBPF); empty for all."""
    exes: tuple[str, ...] = ()
    """Only these executables (eBPF); empty for all."""
    iface: str = "any"
    """Interface for plaintext capture."""
    ports: tuple[int, ...] = DEFAULT_PCAP_PORTS
    """Plaintext LLM server ports for packet capture."""
    bpf_filter: str = ""
    """A libpcap filter expression that replaces ``ports`` when set."""
    max_bytes_per_call: int = 1 << 20
    """eBPF copy cap per SSL call; the rest is counted as lost."""
    bpf_cache_dir: str = _BPF_CACHE_DIR
    """Compiled BPF objects kept between starts (a warm start compiles nothing); "": none."""
    non_llm_budget_bytes: int = 32 << 10
    """eBPF copy per direction of a connection whose HTTP/1 request line cannot be
    an LLM call (judged in the kernel); 0 copies every connection until judged."""
    ring_buffer_bytes: int = 8 << 20
    """eBPF ring buffer (a power of two); its measured fill is in README, Benchmarks."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything the daemon and the CLI need, validated."""

    listen_host: str = DEFAULT_LISTEN_HOST
    """API bind address."""
    listen_port: int = DEFAULT_PORT
    """API port."""
    token: str | None = None
    """Bearer token for the API; required for a non-loopback bind."""
    db_path: Path = DEFAULT_DB_PATH
    """SQLite database file."""
    retention_days: int = 90
    """Events older than this are pruned; 0 keeps everything."""
    minute_retention_days: int = 14
    """Minute rollups older than this are pruned (hour rollups stay with the events)."""
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    """Capture settings."""
    hosts: Mapping[str, str] = field(default_factory=dict)
    """Extra API hosts → provider."""
    tenant_headers: tuple[str, ...] = ("x-tenant-id",)
    """Request headers that name the tenant, lower case."""
    prices: tuple[PriceOverride, ...] = ()
    """User price overrides."""
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    """``[[budgets]]``, ``[enforcement]`` and ``[alerts]``."""
    otlp: OtlpSettings = field(default_factory=OtlpSettings)
    """OpenTelemetry export (off by default)."""
    redis: RedisSettings = field(default_factory=RedisSettings)
    """Redis Streams export (off by default)."""
    config_path: Path | None = None
    """The file these settings came from, if any."""
    warnings: tuple[str, ...] = ()
    """Deprecated keys that were accepted but have no effect, as ``file:line: why``
    (the daemon logs each at start)."""

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with command-line values applied (None values ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT``.

    Raises:
        ConfigError: on a malformed value or a port outside 1-65535.
    """
    host, port_text = DEFAULT_LISTEN_HOST, str(DEFAULT_PORT)
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d*))?|([^:\[\]]*)(?::(\d*))?", value.strip())
    if not match or not value.strip():
        raise ConfigError(f"listen: expected HOST:PORT, got {value!r}")
    host = match.group(1) or match.group(3) or host
    port_text = match.group(2) or match.group(4) or port_text
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"listen: port must be 1-65535, got {port}")
    return host, port


def load_settings(path: Path | None, *, required: bool = False) -> Settings:
    """Load and validate a TOML config file.

    Args:
        path: The file; None (or a missing default file when not ``required``)
            gives the defaults.
        required: Raise when the file does not exist (an explicit ``--config``).

    Raises:
        ConfigError: naming the file, the line and the reason.
    """
    if path is None:
        return Settings()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such config file") from None
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        where = f"{path}:{line.group(1)}" if line else str(path)
        raise ConfigError(f"{where}: invalid TOML: {exc}") from exc
    return _Validator(path, text).settings(doc)


class _Validator(TomlReader):
    """Turns a parsed TOML document into Settings, locating bad values by line."""

    def settings(self, doc: dict[str, Any]) -> Settings:
        self._only(
            doc,
            "",
            (
                "api",
                "store",
                "capture",
                "providers",
                "tenants",
                "prices",
                "otlp",
                "redis",
                *_BUDGET_TABLES,
            ),
        )
        api = self._table(doc, "api", ("listen", "token"))
        store = self._table(doc, "store", ("db", "retention_days", "minute_retention_days"))
        cap = self._table(
            doc, "capture", (*CaptureSettings.__dataclass_fields__, *_DEPRECATED_CAPTURE)
        )
        providers = self._table(doc, "providers", ("hosts",))
        tenants = self._table(doc, "tenants", ("headers",))
        host, port = DEFAULT_LISTEN_HOST, DEFAULT_PORT
        if "listen" in api:
            try:
                host, port = parse_listen(self._str(api, "api", "listen"))
            except ConfigError as exc:
                raise self._error("api", "listen", str(exc).removeprefix("listen: ")) from None
        token = self._str(api, "api", "token") if "token" in api else None
        if token == "":
            token = None
        retention = self._int(store, "store", "retention_days", default=90, minimum=0)
        minutes = self._int(store, "store", "minute_retention_days", default=14, minimum=0)
        db = Path(self._str(store, "store", "db")) if "db" in store else DEFAULT_DB_PATH
        return Settings(
            listen_host=host,
            listen_port=port,
            token=token,
            db_path=db,
            retention_days=retention,
            minute_retention_days=minutes,
            capture=self._capture(cap),
            budgets=parse_budget_settings(doc, self._path, "\n".join(self._lines)),
            hosts=self._hosts(providers.get("hosts", {})),
            tenant_headers=tuple(
                h.lower() for h in self._strs(tenants, "tenants", "headers", ("x-tenant-id",))
            ),
            prices=self._prices(doc.get("prices", {})),
            otlp=otlp_settings(self, self._table(doc, "otlp", OTLP_KEYS)),
            redis=redis_settings(self, self._table(doc, "redis", REDIS_KEYS)),
            config_path=self._path,
            warnings=self._deprecated(cap),
        )

    def _deprecated(self, cap: dict[str, Any]) -> tuple[str, ...]:
        found = []
        for key, why in _DEPRECATED_CAPTURE.items():
            if key in cap:
                self._int(cap, "capture", key, default=1, minimum=1)  # still a valid value
                found.append(str(self._error("capture", key, f"deprecated: {why}")))
        return tuple(found)

    def _capture(self, cap: dict[str, Any]) -> CaptureSettings:
        mode = self._str(cap, "capture", "mode") if "mode" in cap else "auto"
        if mode not in _CAPTURE_MODES:
            raise self._error("capture", "mode", f"must be one of {', '.join(_CAPTURE_MODES)}")
        ports = tuple(self._ints(cap, "capture", "ports", DEFAULT_PCAP_PORTS))
        if any(not 1 <= p <= 65535 for p in ports):
            raise self._error("capture", "ports", "ports must be 1-65535")
        return CaptureSettings(
            mode=mode,
            pids=tuple(self._ints(cap, "capture", "pids", ())),
            comms=tuple(self._strs(cap, "capture", "comms", ())),
            exes=tuple(self._strs(cap, "capture", "exes", ())),
            iface=self._str(cap, "capture", "iface") if "iface" in cap else "any",
            ports=ports,
            bpf_filter=self._str(cap, "capture", "bpf_filter") if "bpf_filter" in cap else "",
            max_bytes_per_call=self._int(
                cap, "capture", "max_bytes_per_call", default=1 << 20, minimum=1
            ),
            bpf_cache_dir=(
                self._str(cap, "capture", "bpf_cache_dir")
                if "bpf_cache_dir" in cap
                else _BPF_CACHE_DIR
            ),
            non_llm_budget_bytes=self._int(
                cap, "capture", "non_llm_budget_bytes", default=32 << 10, minimum=0
            ),
            ring_buffer_bytes=self._ring_bytes(cap),
        )

    def _ring_bytes(self, cap: dict[str, Any]) -> int:
        size = self._int(cap, "capture", "ring_buffer_bytes", default=8 << 20, minimum=1 << 16)
        if size & (size - 1):
            raise self._error("capture", "ring_buffer_bytes", f"must be a power of 2, not {size}")
        return size

    def _hosts(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise self._error("providers", "hosts", "must be a table of host = provider")
        out: dict[str, str] = {}
        for host, provider in raw.items():
            if not isinstance(provider, str) or not provider:
                raise self._error("providers.hosts", host, "provider must be a non-empty string")
            out[host.lower()] = provider
        return out

    def _prices(self, raw: Any) -> tuple[PriceOverride, ...]:
        if not isinstance(raw, dict):
            raise self._error("", "prices", 'must be tables like [prices."model"]')
        out = []
        for model, entry in raw.items():
            table = f'prices."{model}"'
            if not isinstance(entry, dict):
                raise self._error("prices", model, "must be a table of per-million prices")
            self._only(entry, table, ("provider", *_PRICE_KEYS))
            for key in ("input", "output"):
                if key not in entry:
                    raise self._error(table, model, f"missing {key!r} (USD per million tokens)")
            values = {k: self._money(entry, table, k) for k in _PRICE_KEYS if k in entry}
            provider = entry.get("provider")
            if provider is not None and not isinstance(provider, str):
                raise self._error(table, "provider", "must be a string")
            out.append(
                PriceOverride(
                    model=model,
                    provider=provider,
                    input_mtok=values["input"],
                    output_mtok=values["output"],
                    cache_read_mtok=values.get("cache_read", values["input"]),
                    cache_write_mtok=values.get("cache_write", values["input"]),
                )
            )
        return tuple(out)

    # ------------------------------------------------------------ typed getters
