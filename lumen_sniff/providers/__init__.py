"""Pure LLM API recognition and usage extraction. No I/O.

``classify`` recognises an exchange as an LLM API call; ``new_extractor``
returns the reader of its response body. See :mod:`lumen_sniff.providers.base`
for the contract, :mod:`lumen_sniff.providers.family` for the ``ApiFamily`` row
every family module declares, and :mod:`lumen_sniff.providers.table` for the
list of rows.
"""

from __future__ import annotations

from lumen_sniff.providers.base import Classification, Extraction, RequestInfo, UsageExtractor
from lumen_sniff.providers.hosts import provider_for_host
from lumen_sniff.providers.registry import classify, new_extractor

__all__ = [
    "Classification",
    "Extraction",
    "RequestInfo",
    "UsageExtractor",
    "classify",
    "new_extractor",
    "provider_for_host",
]
