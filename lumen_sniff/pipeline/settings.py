"""The pipeline's settings: validated values, no side effects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lumen_sniff.pricing.overrides import ModelPrice, PriceOverrideLike, overrides_from
from lumen_sniff.providers.attribution import DEFAULT_TENANT_HEADERS

__all__ = ["DEFAULT_REQUEST_BODY_CAP_BYTES", "PipelineSettings"]

DEFAULT_REQUEST_BODY_CAP_BYTES = 4 << 20
"""Request body bytes kept for classification (4 MiB); the size is always counted."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineSettings:
    """Validated settings of the pure pipeline (no side effects)."""

    hosts: Mapping[str, str] = field(default_factory=dict)
    """Extra API hosts (``host``, ``host:port``, ``*.domain``) → provider."""
    tenant_headers: tuple[str, ...] = DEFAULT_TENANT_HEADERS
    """Request headers naming the tenant, in priority order."""
    key_salt: bytes = b""
    """Per-installation salt of API-key fingerprints."""
    price_overrides: Mapping[str, ModelPrice] | Iterable[PriceOverrideLike] = ()
    """``{model: ModelPrice}``, or config ``PriceOverride`` entries."""
    request_body_cap_bytes: int = DEFAULT_REQUEST_BODY_CAP_BYTES
    """Request body bytes kept per exchange for classification."""
    max_connections: int = 4096
    """Connections tracked at once (tracker and assembler)."""
    max_open_exchanges: int = 256
    """Open exchanges (HTTP/2 streams) kept per connection."""
    count_server_side: bool = False
    """Also count calls a TLS-terminating relay on this host received (they are
    normally seen again on its outbound connection, so counting both doubles)."""

    def model_prices(self) -> dict[str, ModelPrice]:
        """The overrides as the ``{model: ModelPrice}`` mapping the Pricer takes."""
        overrides = self.price_overrides
        if isinstance(overrides, Mapping):
            return dict(overrides)
        return overrides_from(overrides)
