"""The eBPF capture's settings.

Kept apart from the loader so that config and tests can use them without bcc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lumen_sniff.errors import ConfigError

__all__ = ["BpfSettings"]

_MAX_CHUNKS_PER_CALL = 256
"""Upper bound on max_bytes_per_call / chunk_bytes: keeps verification small."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BpfSettings:
    """What the eBPF capture hooks and how much it copies."""

    pids: tuple[int, ...] = ()
    """Only these processes; empty for all."""
    comms: tuple[str, ...] = ()
    """Only processes with these (leader) names; empty for all."""
    exes: tuple[str, ...] = ()
    """Only these executables; empty for all."""
    exclude_pids: tuple[int, ...] = ()
    """Never these processes (the daemon itself)."""
    max_bytes_per_call: int = 1 << 20
    """Bytes copied per SSL call at most; the rest is counted as lost."""
    chunk_bytes: int = 16384
    """Payload bytes per ring-buffer record."""
    ring_bytes: int = 8 << 20
    """Ring buffer size (a power of two, at least a page)."""
    queue_size: int = 65536
    """Capacity of the Chunk queue."""
    wakeup_records: int = 64
    """Records per CPU between wake-ups of user space."""
    wakeup_bytes: int = 256 << 10
    """Bytes per CPU between wake-ups of user space."""
    gather_ms: int = 2
    """After a wake-up, wait this long for the rest of a burst before reading it."""
    system_libraries: bool = True
    """Hook the system's libssl at start even if no process maps it yet."""
    empty_probes: bool = False
    """Attach probes that return at once (the benchmark's floor)."""
    blind_spots: bool = True
    """Report TLS to LLM hosts that no probe reads (the socket program)."""
    hosts: tuple[tuple[str, str], ...] = ()
    """Extra API hosts → provider (config ``[providers.hosts]``), for that report."""
    object_cache_dir: str = "/var/cache/lumen-sniff/bpf"
    """Where compiled BPF objects are kept between starts; empty: compile every start."""
    budget_bytes: int = 32 << 10
    """Bytes copied per direction of a connection whose HTTP/1 request line cannot
    be an LLM call; the rest is counted, not copied. 0: copy all."""
    llm_path_prefixes: tuple[str, ...] = ()
    """Paths starting with one of these may be LLM calls (the copy budget's judge)."""
    llm_path_parts: tuple[str, ...] = ()
    """Paths holding one of these at a ``/`` may be LLM calls. With neither list
    the kernel judges nothing and the budget is off."""

    @property
    def judges_paths(self) -> bool:
        """Whether the kernel judges request lines (a budget and needles to judge by)."""
        return self.budget_bytes > 0 and bool(self.llm_path_prefixes or self.llm_path_parts)

    def validate(self) -> None:
        """Raise ConfigError on values the BPF program cannot take."""
        page = os.sysconf("SC_PAGE_SIZE")
        if not 64 <= self.chunk_bytes <= 30 << 10:
            raise ConfigError(f"chunk_bytes must be 64..30720, got {self.chunk_bytes}")
        if self.max_bytes_per_call < 1:
            raise ConfigError("max_bytes_per_call must be positive")
        if -(-self.max_bytes_per_call // self.chunk_bytes) > _MAX_CHUNKS_PER_CALL:
            raise ConfigError(
                f"max_bytes_per_call may be at most {_MAX_CHUNKS_PER_CALL} x chunk_bytes "
                f"({_MAX_CHUNKS_PER_CALL * self.chunk_bytes})"
            )
        if self.ring_bytes < page or self.ring_bytes & (self.ring_bytes - 1):
            raise ConfigError(f"ring_bytes must be a power of two >= {page}")
        if not 0 <= self.budget_bytes < 1 << 31:
            raise ConfigError(f"budget_bytes must be 0..2**31-1, got {self.budget_bytes}")
        if self.queue_size < 1 or self.wakeup_records < 1:
            raise ConfigError("queue_size and wakeup_records must be positive")
