from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from lumen_sniff.cli.main import main
from lumen_sniff.cli.report import money
from lumen_sniff.cli.service import render_unit
from lumen_sniff.cli.top import render
from lumen_sniff.config import Settings
from lumen_sniff.daemon import Daemon, key_salt
from lumen_sniff.errors import ConfigError

UNIT = (Path(__file__).parents[2] / "systemd" / "lumen-sniff.service").read_text()


def test_money_never_shows_unpriced_as_zero() -> None:
    assert money(None) == "unpriced"
    assert money(0.0) == "$0.0000"
    assert money(1.23456) == "$1.2346"
    assert money(1234.5) == "$1,234.50"


def test_unit_is_hardened_and_points_at_the_installed_binary() -> None:
    unit = render_unit(UNIT, "/opt/lumen/.venv/bin/lumen-sniff")
    assert "ExecStart=/opt/lumen/.venv/bin/lumen-sniff run --config" in unit
    for line in (
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/lumen-sniff",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
    ):
        assert line in unit.splitlines()
    bounding = next(x for x in unit.splitlines() if x.startswith("CapabilityBoundingSet="))
    assert "CAP_BPF" in bounding and "CAP_SYS_PTRACE" in bounding
    with pytest.raises(ValueError):
        render_unit(UNIT, "relative/lumen-sniff")


def test_top_renders_rates_from_a_five_minute_window() -> None:
    summary = {
        "requests": 10,
        "errors": 1,
        "cost_usd": 0.5,
        "input_tokens": 3000,
        "output_tokens": 0,
        "unpriced_requests": 2,
    }
    usage = {
        "series": [
            {
                "group": "gpt-4o-mini",
                "points": [
                    {"requests": 10, "cost_usd": 0.5, "input_tokens": 3000, "output_tokens": 0}
                ],
            }
        ]
    }
    event = {
        "started_at": "2026-11-23T13:46:05.000000Z",
        "process": "python3",
        "service": "app.worker",
        "model": "gpt-4o-mini",
        "status": 200,
        "input_tokens": 300,
        "output_tokens": 0,
        "duration_ms": 12.0,
        "cost_usd": None,
    }
    console = Console(width=140, record=True)
    unseen = [
        {
            "service": "Probe",
            "process": "java",
            "host": "api.openai.com",
            "connections": 3,
            "bytes_sent": 1200,
            "bytes_received": 5000,
            "reason": "Java JSSE not supported",
        }
    ]
    console.print(render(summary, usage, usage, [event], unseen=unseen))
    text = console.export_text()
    assert "2.0 req/min" in text  # 10 requests / 5 minutes
    assert "$6.0000/hour" in text  # $0.5 per 5 minutes
    assert "10 tokens/s" in text  # 3000 tokens / 300 s
    assert "2 unpriced" in text
    assert "13:46:05" in text and "unpriced" in text
    assert "app.worker" in text and "top services" in text
    assert "unseen" in text and "api.openai.com" in text and "Java JSSE not supported" in text


def test_non_loopback_listen_without_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="without an API token"):
        Daemon(Settings(listen_host="0.0.0.0"))
    Daemon(Settings(listen_host="0.0.0.0", token="t"))  # allowed with a token
    Daemon(Settings(listen_host="127.0.0.1"))


def test_run_refuses_non_loopback_without_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", "--listen", "0.0.0.0:7999", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code != 0
    assert "without an API token" in result.output


def test_run_reports_a_bad_config_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[api]\nlisten = "127.0.0.1:0"\n')
    result = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert result.exit_code != 0
    assert f"{config}:2: [api] listen: port must be 1-65535" in result.output


def test_key_salt_is_created_private_and_stable(tmp_path: Path) -> None:
    first = key_salt(tmp_path)
    assert len(first) == 32
    assert (tmp_path / "key-salt").stat().st_mode & 0o777 == 0o600
    assert key_salt(tmp_path) == first


def test_pricing_command_shows_rates_and_unpriced(tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["pricing", "gpt-4o-mini", "--provider", "openai", "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"input": 0.15' in ok.output and '"output": 0.6' in ok.output
    config = tmp_path / "c.toml"
    config.write_text('[prices."house-model"]\ninput = 2\noutput = 8\ncache_read = 0.5\n')
    custom = CliRunner().invoke(main, ["pricing", "house-model", "--config", str(config)])
    assert custom.exit_code == 0, custom.output
    assert "override" in custom.output
    assert "  input            2.0000" in custom.output
    assert "  cache_read       0.5000" in custom.output
    assert "  cache_write      2.0000" in custom.output
    missing = CliRunner().invoke(main, ["pricing", "no-such-model-xyz"])
    assert missing.exit_code == 1
    assert "unpriced" in missing.output


def test_every_listed_command_loads_and_has_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["--help"])
    assert listing.exit_code == 0
    for name in (
        "run",
        "replay",
        "top",
        "report",
        "events",
        "lap",
        "pricing",
        "doctor",
        "install-service",
    ):
        assert name in listing.output
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage: " in result.output


def test_doctor_lists_each_blind_spot_with_its_reason() -> None:
    from lumen_sniff.cli.doctor import unseen_checks

    row = {
        "service": "Probe",
        "process": "java",
        "exe": "/usr/bin/java",
        "host": "api.openai.com",
        "connections": 2,
        "bytes_sent": 10,
        "bytes_received": 20,
        "last_seen": "2026-12-03T13:00:00.000000Z",
        "reason": "Java JSSE not supported",
    }
    (check,) = unseen_checks({"unseen": [row]}, "http://127.0.0.1:7437")
    assert (check.name, check.ok, check.fix) == (
        "unseen: Probe → api.openai.com",
        False,
        "Java JSSE not supported",
    )
    assert "2 connection(s)" in check.detail
    (none,) = unseen_checks({"unseen": []}, "u")
    assert none.ok
    (absent,) = unseen_checks(None, "http://x")
    assert absent.ok and "no daemon at http://x" in absent.detail
