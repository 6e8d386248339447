"""The real AI agents the tests drive (installed from npm by ``make setup-test``).

One install directory per pinned version under ``tests/agents/`` (a package.json
and its package-lock.json each). Every agent talks only to the TLS stand-in on
127.0.0.1: its base URL, the stand-in's CA and a dummy key come from the
environment, non-essential traffic is switched off.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from lumen_sniff.model import Chunk, ConnKey, Direction, ProcessInfo

__all__ = ["AGENTS", "AGENTS_DIR", "CODEX", "Agent", "load_records"]

AGENTS_DIR = Path(__file__).resolve().parents[1] / "agents"
"""Where the pinned agents are installed (tests/agents/<name>/node_modules)."""

BUN_FETCH_JS = Path(__file__).resolve().parent / "bun_fetch.js"
"""A Bun script that streams one Anthropic messages call with Bun's own fetch."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Agent:
    """One pinned agent and how to run it against the stand-in."""

    name: str
    """Install directory under tests/agents and test id."""
    version: str
    """The pinned npm version (also in its package.json)."""
    binary: str
    """The executable, relative to the install directory."""
    kind: str = "claude"
    """How it is driven: "claude" (-p), "bun" (a fetch script) or "codex" (exec)."""

    @property
    def path(self) -> Path:
        """Absolute path of the executable."""
        return AGENTS_DIR / self.name / self.binary

    def argv(self) -> list[str]:
        """Command line of one call."""
        if self.kind == "bun":
            return [str(self.path), str(BUN_FETCH_JS)]
        if self.kind == "codex":
            return [str(self.path), "exec", "--skip-git-repo-check", "say hello in six words"]
        return [str(self.path), "-p", "say hello in six words"]

    def env(self, *, base_url: str, ca: str, home: str) -> dict[str, str]:
        """Environment of one call: the stand-in, its CA, a dummy key, nothing external.

        For Codex this also writes ``$CODEX_HOME/config.toml`` (inside ``home``) with a
        provider at the stand-in's Responses API.
        """
        if self.kind == "codex":
            codex_home = Path(home) / ".codex"
            codex_home.mkdir(exist_ok=True)
            (codex_home / "config.toml").write_text(CODEX_CONFIG.format(base_url=base_url))
            return {"PATH": "/usr/bin:/bin", "HOME": home, "CODEX_HOME": str(codex_home),
                    "OPENAI_API_KEY": "sk-test-dummy-0000", "SSL_CERT_FILE": ca,
                    "NO_COLOR": "1"}  # fmt: skip
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-dummy-0000",
            "NODE_EXTRA_CA_CERTS": ca,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "BUN_CONFIG_NO_CLEAR_TERMINAL_ON_RELOAD": "1",
            "NO_COLOR": "1",
        }


CODEX_CONFIG = """model = "gpt-5"
model_provider = "standin"

[model_providers.standin]
name = "standin"
base_url = "{base_url}/v1"
wire_api = "responses"
env_key = "OPENAI_API_KEY"
"""
"""Codex's config: every call goes to the stand-in's Responses API."""

AGENTS: tuple[Agent, ...] = (
    Agent(name="claude-current", version="2.1.332",
          binary="node_modules/@anthropic-ai/claude-code-linux-x64/claude"),
    Agent(name="claude-older", version="2.1.128",
          binary="node_modules/@anthropic-ai/claude-code-linux-x64/claude"),
    Agent(name="bun", version="1.4.5", binary="node_modules/@oven/bun-linux-x64/bin/bun",
          kind="bun"),
)  # fmt: skip
"""Agents with BoringSSL linked in and stripped (Bun executables)."""

CODEX = Agent(
    name="codex", version="0.171.0", kind="codex",
    binary="node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
)  # fmt: skip
"""Codex CLI: static musl Rust; its API calls go through rustls (not hooked: reported)."""


def load_records(record_dir: Path) -> list[Chunk]:
    """The stand-in's own record of what each connection carried, as Chunks."""
    out: list[Chunk] = []
    process = ProcessInfo(pid=1, tid=1, comm="standin")
    for path in sorted(record_dir.glob("conn-*.json")):
        doc = json.loads(path.read_text())
        for raw in doc["chunks"]:
            out.append(Chunk(
                conn=ConnKey(source="replay", pid=1, handle=int(doc["conn_id"])),
                direction=Direction.EGRESS if raw["direction"] == "egress" else Direction.INGRESS,
                offset=int(raw["offset"]), ts_ns=int(raw["ts_ns"]),
                data=base64.b64decode(raw["data_b64"]), closed=bool(raw.get("closed", False)),
                process=process,
            ))  # fmt: skip
    return out
