from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lumen_sniff.config import (
    DEFAULT_DB_PATH,
    DEFAULT_PORT,
    Settings,
    is_loopback,
    load_settings,
    parse_listen,
)
from lumen_sniff.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.listen_host == "127.0.0.1"
    assert settings.listen_port == DEFAULT_PORT
    assert settings.listen_port not in (8000, 8080, 9090, 9091, 9100, 9464)
    assert settings.db_path == DEFAULT_DB_PATH
    assert (settings.retention_days, settings.minute_retention_days) == (90, 14)


def test_missing_default_file_is_fine_but_explicit_one_is_not(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "nope.toml") == Settings()
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml", required=True)


def test_full_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[api]
listen = "0.0.0.0:9999"
token = "s3cret"

[store]
db = "/tmp/x/lumen.db"
retention_days = 7
minute_retention_days = 3

[capture]
mode = "pcap"
comms = ["python3"]
ports = [11434]

[providers.hosts]
"LLM.internal:8443" = "openai"

[tenants]
headers = ["X-Team"]

[prices."my-model"]
provider = "openai"
input = 3
output = "12.5"
""",
    )
    s = load_settings(path)
    assert (s.listen_host, s.listen_port, s.token) == ("0.0.0.0", 9999, "s3cret")
    assert s.db_path == Path("/tmp/x/lumen.db") and s.retention_days == 7
    assert s.minute_retention_days == 3
    assert s.capture.mode == "pcap" and s.capture.comms == ("python3",)
    assert s.capture.ports == (11434,)
    assert s.hosts == {"llm.internal:8443": "openai"}
    assert s.tenant_headers == ("x-team",)
    (price,) = s.prices
    assert price.model == "my-model" and price.provider == "openai"
    assert price.input_mtok == Decimal(3) and price.output_mtok == Decimal("12.5")
    assert price.cache_read_mtok == Decimal(3) and price.cache_write_mtok == Decimal(3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[api]\nlisten = "127.0.0.1:70000"\n',
            r"config.toml:2: \[api\] listen: port must be 1-65535",
        ),
        (
            "[store]\nretention_days = -1\n",
            r"config.toml:2: \[store\] retention_days: must be >= 0",
        ),
        (
            "[store]\nminute_retention_days = -1\n",
            r"config.toml:2: \[store\] minute_retention_days: must be >= 0",
        ),
        ('[capture]\n\nmode = "magic"\n', r"config.toml:3: \[capture\] mode: must be one of"),
        ("[api]\nlisten = 5\n", r"config.toml:2: \[api\] listen: must be a string"),
        ("[api]\nbogus = 1\n", r"config.toml:2: \[api\] bogus: unknown key"),
        ("[api\n", r"config.toml:1: invalid TOML"),
        ('[prices."m"]\ninput = 1\n', r"missing 'output'"),
        (
            '[prices."m"]\ninput = -1\noutput = 1\n',
            r"config.toml:2: \[prices.\"m\"\] input: must be a finite",
        ),
        ("[capture]\nports = [0]\n", r"config.toml:2: \[capture\] ports"),
    ],
)
def test_invalid_config_names_file_line_and_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("0.0.0.0", ("0.0.0.0", DEFAULT_PORT)),
        (":8123", ("127.0.0.1", 8123)),
        ("[::1]:8123", ("::1", 8123)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["", "a:b:c", "host:0", "host:99999"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(value)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("10.0.0.5")
        and not is_loopback("example.com")
    )


def test_ring_buffer_size_reaches_the_capture(tmp_path: Path) -> None:
    from lumen_sniff.stagesettings import bpf_settings

    assert bpf_settings(load_settings(None)).ring_bytes == 8 << 20
    settings = load_settings(_write(tmp_path, "[capture]\nring_buffer_bytes = 4194304\n"))
    assert bpf_settings(settings).ring_bytes == 4 << 20
    with pytest.raises(ConfigError, match="power of 2"):
        load_settings(_write(tmp_path, "[capture]\nring_buffer_bytes = 5000000\n"))
