"""Every recorded exchange in fixtures/exchanges/ through the Pipeline gives the
usage the real client itself reported (tests/support/make_fixtures.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lumen_sniff.model import Chunk, IgnoreConnection, PipelineOutput, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.support.chunks import split_chunks
from tests.support.fixtures import EXCHANGES_DIR, load_exchange

FIXTURES = sorted(EXCHANGES_DIR.glob("*.json"))
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens")


def test_fixtures_are_present_and_recorded() -> None:
    assert len(FIXTURES) >= 30
    for path in FIXTURES:
        chunks, expected = load_exchange(path)
        assert chunks, f"{path.stem}: no recorded chunks"
        assert expected["calls"] >= 1


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_recorded_exchange_gives_the_client_reported_usage(path: Path) -> None:
    chunks, expected = load_exchange(path)
    pipeline = Pipeline(PipelineSettings(key_salt=b"fixtures"))
    outputs = [out for chunk in chunks for out in pipeline.feed(chunk)] + pipeline.close()
    assert not [o for o in outputs if isinstance(o, IgnoreConnection)]
    events = [o for o in outputs if isinstance(o, UsageEvent)]
    assert len(events) == expected["calls"]
    for event in events:
        assert event.status == expected["status"]
        if event.status < 400:  # an error answers a stream request with plain JSON
            assert event.stream == expected["stream"]
        assert (event.error_type is not None) == (expected["error"] is not None)
        assert event.pid == 4242
        if expected["model"] is not None:
            assert event.model is not None and event.model.startswith(expected["model"])
    if expected["input_tokens"] is None:  # the client saw no usage: never "reported"
        assert all(e.usage_source is not UsageSource.REPORTED for e in events)
        return
    assert all(e.usage_source is UsageSource.REPORTED for e in events)
    for name in _TOKENS:
        assert sum(getattr(e, name) for e in events) == expected[name], name


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_recorded_exchange_is_split_invariant(path: Path) -> None:
    chunks, _ = load_exchange(path)

    def run(feed: list[Chunk]) -> list[PipelineOutput]:
        pipeline = Pipeline(PipelineSettings(key_salt=b"fixtures"))
        return [out for chunk in feed for out in pipeline.feed(chunk)] + pipeline.close()

    whole = run(chunks)
    assert run(split_chunks(chunks, random.Random(path.stem))) == whole
    assert run(split_chunks(chunks, None)) == whole
