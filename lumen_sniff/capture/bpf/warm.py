"""The capture's compiled BPF objects: loaded at start, or obtained ahead of it.

A cold start (first after an install, a kernel or a bcc change) compiles the
capture and socket programs in bcc children and has the kernel verify every probe
with the copy budget's judge: about 3.5 s instead of 1.5. :func:`warm_cache` does
that work once, without attaching anything, so ``make setup`` (``lumen-sniff warm``)
leaves the first ``lumen-sniff run`` a warm start. :func:`load_capture` is the one
place that turns the capture object into loaded programs, so the daemon and the
warm-up agree on what a cached verdict means.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from lumen_sniff.capture.bpf.btf import parsed_once
from lumen_sniff.capture.bpf.pathtrie import refused_program
from lumen_sniff.capture.bpf.program import PROGRAM_KINDS, render_capture
from lumen_sniff.capture.bpf.runtime.cache import CompileJob, CompileRequest
from lumen_sniff.capture.bpf.runtime.loaded import BpfObject
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.capture.bpf.sockets import SocketWatch

__all__ = ["Warmed", "capture_job", "load_capture", "socket_cflags", "warm_cache"]

log = logging.getLogger("lumen_sniff.capture.bpf")

ACCEPTED = "accepted"
"""The verdict recorded beside a capture object every probe of which the kernel took."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Warmed:
    """One program of the warm-up."""

    name: str
    """capture, sockets or guard."""
    cached: bool
    """It was in the cache already (nothing compiled)."""
    seconds: float
    """Wall time to obtain it (compile included)."""


def capture_job(settings: BpfSettings, cache: Path | None) -> CompileJob:
    """The capture program's compile job (a child starts at once on a cold cache)."""
    text, cflags = render_capture(settings)
    return CompileJob(CompileRequest(name="capture", text=text, cflags=tuple(cflags)), cache)


def socket_cflags(capture_cflags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The capture's cflags the socket program shares (task_struct offsets)."""
    return tuple(c for c in capture_cflags if "LUMEN_TASK_" in c)


def load_capture(
    settings: BpfSettings, job: CompileJob, cache: Path | None
) -> tuple[BpfObject, CompileJob, BpfSettings]:
    """Load the capture object; return it with the job and settings it came from.

    Verifying every probe with the judge took 0.85 s of a 1.26 s start; the
    verdict holds for this object on this kernel, so a start that finds it
    recorded loads each program lazily, as it attaches. When the kernel refuses
    the judge, the budget goes (the returned settings say so) rather than a probe.
    """
    bpf = BpfObject(job.result(), PROGRAM_KINDS)
    if not settings.judges_paths or job.verdict(ACCEPTED):
        return bpf, job, settings
    if not (why := refused_program(bpf)):
        job.record(ACCEPTED)
        return bpf, job, settings
    log.warning("the kernel refused the copy budget (%s): copying all", why)
    bpf.cleanup()
    settings = replace(settings, budget_bytes=0)
    job = capture_job(settings, cache)
    return BpfObject(job.result(), PROGRAM_KINDS), job, settings


def warm_cache(settings: BpfSettings, cache: Path, guard: CompileRequest) -> list[Warmed]:
    """Compile into ``cache`` what a start needs, and record the kernel's verdict.

    Nothing is attached; the loaded programs and maps are released before return.
    Idempotent: a warm cache costs one load of the capture object at most.

    Raises:
        BpfUnavailable: a program did not compile or load (bcc, headers, root).
        OSError: the kernel refused a map or program for another reason.
    """
    with parsed_once():
        capture = capture_job(settings, cache)
        jobs = [capture]
        if settings.blind_spots and not settings.empty_probes:
            watch = SocketWatch(_ignore, _ignore, cflags=socket_cflags(capture.request.cflags))
            jobs.append(watch.begin(cache))
    jobs.append(CompileJob(guard, cache))
    for job in jobs:
        job.result()  # the children compile side by side; wait for all
    started = time.monotonic()
    bpf, final, _ = load_capture(settings, capture, cache)
    bpf.cleanup()
    if final is not capture:  # recompiled without the budget: report that object
        jobs[0] = final
    verify_s = time.monotonic() - started
    return [
        Warmed(
            name=job.request.name,
            cached=job.cached,
            seconds=job.seconds + (verify_s if job is jobs[0] else 0.0),
        )
        for job in jobs
    ]


def _ignore(*_args: object) -> None:
    """SocketWatch callbacks: the warm-up reads no events."""
