"""Config reaches each stage's typed settings through lumen_sniff.stagesettings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.capture.pcap.sniffer import SnifferSettings
from lumen_sniff.config import Settings, load_settings
from lumen_sniff.pipeline.pathneedles import kernel_path_filter
from lumen_sniff.pricing.overrides import ModelPrice
from lumen_sniff.stagesettings import bpf_settings, pipeline_settings, sniffer_settings

CONFIG = """
[capture]
pids = [7]
comms = ["python3"]
exes = ["/usr/bin/node"]
ports = [8000]
bpf_filter = "tcp port 9"
max_bytes_per_call = 4096
bpf_cache_dir = "/srv/bpf-objects"
non_llm_budget_bytes = 8192

[providers.hosts]
"llm-gateway.internal" = "openai"

[tenants]
headers = ["x-team"]

[prices."my-finetune"]
input = 3.0
output = 12.0
"""


def test_every_stage_gets_its_settings_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    settings = load_settings(path)
    pipeline = pipeline_settings(settings, key_salt=b"salt")
    assert dict(pipeline.hosts) == {"llm-gateway.internal": "openai"}
    assert pipeline.tenant_headers == ("x-team",) and pipeline.key_salt == b"salt"
    prices = pipeline.model_prices()
    assert isinstance(prices["my-finetune"], ModelPrice)
    assert prices["my-finetune"].input_mtok == Decimal("3.0")
    prefixes, parts = kernel_path_filter()
    assert bpf_settings(settings, exclude_pids=(1,)) == BpfSettings(
        pids=(7,), comms=("python3",), exes=("/usr/bin/node",), max_bytes_per_call=4096,
        exclude_pids=(1,), hosts=(("llm-gateway.internal", "openai"),), budget_bytes=8192,
        object_cache_dir="/srv/bpf-objects",
        llm_path_prefixes=prefixes, llm_path_parts=parts,
    )  # fmt: skip
    assert sniffer_settings(settings) == SnifferSettings(
        iface="any", ports=(8000,), bpf_filter="tcp port 9"
    )


def test_defaults_give_each_stage_its_defaults() -> None:
    prefixes, parts = kernel_path_filter()
    assert bpf_settings(Settings()) == BpfSettings(llm_path_prefixes=prefixes, llm_path_parts=parts)
    assert bpf_settings(Settings()).judges_paths  # the daemon's copy budget is on
    assert sniffer_settings(Settings()) == SnifferSettings()
