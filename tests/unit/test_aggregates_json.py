"""/api/usage writes its points as text; they must equal json.dumps of Totals.to_dict."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from lumen_sniff.api.aggregates import point_json
from lumen_sniff.store import Totals
from lumen_sniff.store.schema import ROLLUP_SUMS

_COUNTS = st.integers(0, 2**62)


@given(
    st.builds(
        Totals,
        requests=_COUNTS,
        errors=_COUNTS,
        input_tokens=_COUNTS,
        output_tokens=_COUNTS,
        cache_read_tokens=_COUNTS,
        cache_write_tokens=_COUNTS,
        reasoning_tokens=_COUNTS,
        cost_pusd=st.one_of(st.integers(0, 10**13), st.integers(0, 2**63 - 1)),
        priced=st.integers(0, 3),
        unpriced=_COUNTS,
        estimated=_COUNTS,
    )
)
def test_point_json_is_json_dumps_of_to_dict(t: Totals) -> None:
    stamp = "2025-03-01T00:01:00.000000Z"
    expected = {"t": stamp, **t.to_dict(null_cost_when_unpriced=True)}
    text = point_json(stamp, tuple(getattr(t, name) for name in ROLLUP_SUMS))
    assert json.loads(text) == expected
    assert text == json.dumps(expected, separators=(",", ":"))
