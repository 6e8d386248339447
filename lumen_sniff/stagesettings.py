"""Config → the typed settings of each stage, written once.

The daemon, ``lumen-sniff replay`` and ``lumen-sniff run --dump-bpf`` all turn
the validated :class:`~lumen_sniff.config.Settings` into the pipeline's, the eBPF
capture's and the packet capture's settings through these functions, so a new
config key reaches its stage in one place. Nothing here has side effects.
"""

from __future__ import annotations

from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.capture.pcap.sniffer import SnifferSettings
from lumen_sniff.config import Settings
from lumen_sniff.pipeline.pathneedles import kernel_path_filter
from lumen_sniff.pipeline.settings import PipelineSettings

__all__ = ["bpf_settings", "pipeline_settings", "sniffer_settings"]


def pipeline_settings(settings: Settings, *, key_salt: bytes) -> PipelineSettings:
    """The pipeline's settings.

    Args:
        settings: Validated config.
        key_salt: Salt of API-key fingerprints (the daemon's, from its state dir).
    """
    return PipelineSettings(
        hosts=dict(settings.hosts),
        tenant_headers=settings.tenant_headers,
        key_salt=key_salt,
        price_overrides=settings.prices,
    )


def bpf_settings(settings: Settings, *, exclude_pids: tuple[int, ...] = ()) -> BpfSettings:
    """The eBPF capture's settings.

    Args:
        settings: Validated config.
        exclude_pids: Processes never hooked (the daemon itself).
    """
    cap = settings.capture
    prefixes, parts = kernel_path_filter()  # the copy budget's judge (providers' rows)
    return BpfSettings(
        pids=cap.pids,
        comms=cap.comms,
        exes=cap.exes,
        max_bytes_per_call=cap.max_bytes_per_call,
        object_cache_dir=cap.bpf_cache_dir,
        ring_bytes=cap.ring_buffer_bytes,
        exclude_pids=exclude_pids,
        hosts=tuple(settings.hosts.items()),
        budget_bytes=cap.non_llm_budget_bytes,
        llm_path_prefixes=prefixes,
        llm_path_parts=parts,
    )


def sniffer_settings(settings: Settings) -> SnifferSettings:
    """The packet capture's settings (plaintext LLM server ports)."""
    cap = settings.capture
    return SnifferSettings(iface=cap.iface, ports=cap.ports, bpf_filter=cap.bpf_filter or None)
