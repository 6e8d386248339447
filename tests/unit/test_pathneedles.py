"""The kernel's path judge (modelled here as the LPM trie answers it) never says "not LLM"
for a path the registry could classify or the connection filter lets through."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from lumen_sniff.capture.bpf.pathtrie import load_paths, path_entries, path_key, refused_program
from lumen_sniff.capture.bpf.ringrecords import PATH_ANYWHERE, PATH_AT_START, PATH_BYTES
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.model import RequestHead
from lumen_sniff.pipeline.pathneedles import endpoint_needles, kernel_path_filter
from lumen_sniff.pipeline.routing import HostRouter
from lumen_sniff.protocol.tracker import ConnectionTracker
from lumen_sniff.providers.table import FAMILIES
from tests.support.fixtures import EXCHANGES_DIR, load_exchange

_ENTRIES = path_entries(*kernel_path_filter())


def _kernel_may_be_llm(path: str) -> bool:
    """``judge_head``'s lookups: the longest needle at the start and at every later '/'."""
    raw = path.encode()
    for at in (i for i, ch in enumerate(raw) if ch == ord("/")):
        window = raw[at : at + PATH_BYTES]
        found = [n for n in _ENTRIES if window.startswith(n)]
        if found:
            flags = _ENTRIES[max(found, key=len)]
            if at == 0 or flags & PATH_ANYWHERE:
                return True
    return False


def _fixture_paths() -> list[str]:
    paths = []
    for path in sorted(EXCHANGES_DIR.glob("*.json")):
        chunks, _ = load_exchange(path)
        tracker = ConnectionTracker()
        for chunk in chunks:
            for event in tracker.feed(chunk):
                if isinstance(event, RequestHead):
                    paths.append(event.target.partition("?")[0])
    return sorted(set(paths))


def test_every_endpoint_row_gives_slash_needles() -> None:
    for family in FAMILIES:
        for endpoint in family.endpoints:
            needles, _ = endpoint_needles(endpoint.path.pattern)
            assert needles, (family.name, endpoint.api)
            assert all(n.startswith("/") and len(n) >= 4 for n in needles), needles


def test_every_recorded_llm_request_path_may_be_llm() -> None:
    paths = _fixture_paths()
    assert len(paths) > 10
    for path in paths:
        assert _kernel_may_be_llm(path), path


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/openai/deployments/gpt-4o/chat/completions",
        "/relay/team-a/chat/completions",  # a relay's own prefix, then the API
        "/gateway/v1beta/models/gemini-2.5-pro:generateContent",
        "/x/models/gemini-2.5-flash:streamGenerateContent",
        "/v1/projects/p/locations/l/publishers/anthropic/models/claude:rawPredict",
        "/proxy/messages",
        "/model/anthropic.claude-v2/invoke",
        "/api/chat",
        "/v2/chat",
    ],
)
def test_llm_paths_may_be_llm(path: str) -> None:
    assert _kernel_may_be_llm(path)


@pytest.mark.parametrize(
    "path", ["/bucket/backup-0001.tar", "/health", "/", "/api/users/7", "/static/v1/app.js"]
)
def test_other_paths_are_not_llm(path: str) -> None:
    assert not _kernel_may_be_llm(path)


@pytest.mark.parametrize(
    "path",
    ["/v1/x", "/bucket/chat/completions", "/a/b/embeddings", "/v1beta/y", "/api/generate",
     "/serving-endpoints/m/invocations", "/files/responses", "/v2/anything"],
)  # fmt: skip
def test_whatever_the_connection_filter_lets_through_may_be_llm(path: str) -> None:
    assert HostRouter({}).looks_like_llm("unknown.example", path)
    assert _kernel_may_be_llm(path)


def test_a_prefix_under_an_anywhere_needle_matches_anywhere() -> None:
    # The trie answers with the longest needle only, so an anywhere needle
    # ("/messages") lends its flag to a longer prefix-only one that starts with it.
    entries = path_entries(("/messages/batches", "/v1/"), ("/messages",))
    assert entries[b"/messages/batches"] == PATH_AT_START | PATH_ANYWHERE
    assert entries[b"/v1/"] == PATH_AT_START
    assert entries[b"/messages"] == PATH_ANYWHERE


def test_needles_are_cut_at_the_key_size_and_at_path_ends() -> None:
    long = "/" + "a" * 60
    entries = path_entries((long, "/x?y"), ())
    assert set(entries) == {long.encode()[:PATH_BYTES], b"/x"}
    key = path_key(b"/v1/")
    assert key.prefixlen == 32 and bytes(key.data)[:4] == b"/v1/"
    with pytest.raises(ValueError, match="start with"):
        path_entries(("v1/",), ())


class _FakeBpf:
    def __init__(self, refuse: str) -> None:
        self.refuse, self.loaded = refuse, []

    def load_func(self, name: bytes) -> None:
        if name.decode() == self.refuse:  # as BpfObject.load_func reports a refusal
            raise OSError(errno.E2BIG, "Argument list too long")
        self.loaded.append(name.decode())


def test_a_program_the_verifier_refuses_is_named_so_the_budget_goes_not_the_capture() -> None:
    assert refused_program(_FakeBpf(refuse=""), ["a", "b"]) == ""
    why = refused_program(_FakeBpf(refuse="lumen_go_ret_read"))
    assert why.startswith("lumen_go_ret_read: ") and "too long" in why
    assert refused_program(_FakeBpf(refuse="")) == ""  # every probe of the table loads


def test_no_needles_no_trie() -> None:
    assert load_paths({}, BpfSettings()) == 0
    written: list[tuple[bytes, int]] = []

    class _Table:
        def __setitem__(self, key: Any, value: Any) -> None:
            written.append((bytes(key.data)[: key.prefixlen // 8], value.value))

    n = load_paths({b"lumen_paths": _Table()}, BpfSettings(llm_path_prefixes=("/v1/",)))
    assert n == 1 and written == [(b"/v1/", PATH_AT_START)]
