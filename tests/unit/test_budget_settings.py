"""``[[budgets]]``, ``[enforcement]`` and ``[alerts]`` in the config file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lumen_sniff.budgets.model import Action, ScopeKind
from lumen_sniff.budgets.settings import budget_from_mapping
from lumen_sniff.config import load_settings
from lumen_sniff.errors import ConfigError

GOOD = """
[api]
listen = "127.0.0.1:7437"

[[budgets]]
name = "all-monthly"
period = "month"
timezone = "Europe/Paris"
limit_usd = 500

[[budgets]]
name = "agent"
scope = "service"
match = "my-agent"
period = "10m"
limit_usd = 0.5
limit_requests = 100
thresholds = [80, 50]
action = "block"

[enforcement]
allowlist = ["10.0.0.0/8", "gateway.internal"]

[alerts]
anomaly_factor = 4
[[alerts.webhooks]]
url = "http://127.0.0.1:9/hook"
format = "slack"
headers = { Authorization = "Bearer t" }
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path)


def test_budgets_and_alerts_are_parsed(tmp_path: Path) -> None:
    s = _load(tmp_path, GOOD).budgets  # type: ignore[attr-defined]
    monthly, agent = s.budgets
    assert monthly.scope is ScopeKind.GLOBAL and monthly.period.tz == "Europe/Paris"
    assert monthly.thresholds == (50, 80, 100) and monthly.action is Action.ALERT
    assert agent.limit_usd == Decimal("0.5") and agent.period.rolling_ns == 600 * 10**9
    assert agent.thresholds == (50, 80) and agent.limit_requests == 100
    assert s.allowlist == ("10.0.0.0/8", "gateway.internal") and not s.fail_closed
    assert s.anomaly_factor == 4.0
    assert s.webhooks[0].format == "slack" and s.webhooks[0].headers == {
        "Authorization": "Bearer t"
    }


@pytest.mark.parametrize(
    ("snippet", "line", "message"),
    [
        ('name = "x"\nperiod = "day"\nlimit_usd = -1', 7, "[[budgets]] #2 (x) limit_usd: must be"),
        ('name = "x"\nperiod = "fortnight"\nlimit_usd = 1', 6, "period: period must be"),
        ('name = "x"\nscope = "team"\nmatch = "a"\nperiod = "day"\nlimit_usd = 1', 6, "scope:"),
        ('name = "a"\nperiod = "day"\nlimit_usd = 1', 5, "duplicate budget name"),
        ('name = "x"\nperiod = "day"\nlimit_usd = 1\naction = "kill"', 8, "action: must be"),
        ('name = "x"\nperiod = "day"\nlimit_usd = 1\ncolour = 1', 8, "colour: unknown key"),
        ('name = "x"\nscope = "model"\nperiod = "day"\nlimit_usd = 1', 4, "match: required"),
    ],
)
def test_bad_budgets_name_file_and_line(
    tmp_path: Path, snippet: str, line: int, message: str
) -> None:
    text = '[[budgets]]\nname = "a"\nlimit_usd = 1\n[[budgets]]\n' + snippet + "\n"
    text = text.replace(
        "limit_usd = 1\n[[budgets]]", 'limit_usd = 1\nperiod = "day"\n[[budgets]]', 1
    )
    # line 1 [[budgets]], 2-4 the first budget, 5 the second header, 6… its keys
    text = text.replace("\n[[budgets]]\n", "\n[[budgets]]\n", 1)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert f"config.toml:{line + 1}: " in str(err.value), (str(err.value), text)
    assert message in str(err.value)


def test_api_body_errors_are_key_prefixed() -> None:
    with pytest.raises(ValueError, match="^match: required"):
        budget_from_mapping({"name": "x", "scope": "model", "period": "day", "limit_usd": 1})
    b = budget_from_mapping({"name": "x", "period": "1h", "limit_usd": "0.25"}, source="api")
    assert b.source == "api" and b.limit_usd == Decimal("0.25")
