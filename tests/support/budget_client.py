"""A service calling the OpenAI SDK in a loop, for the budget and enforcement tests.

``python -m tests.support.budget_client --name NAME --base-url URL --ca PEM
[--calls N] [--interval S] [--stop-after-errors K]`` renames its process to
NAME (so the daemon sees that service), then makes ``chat.completions.create``
calls one after another on one client (one keep-alive connection, as an SDK
user would), printing one JSON line per call: ``{"i", "start_ns", "end_ns",
"ok", "error", "cost_tokens"}``. ``error`` is the SDK exception's class name
(``APIConnectionError`` when a connection is refused or destroyed). It exits
after ``--calls`` calls or ``--stop-after-errors`` errors in a row. A line
``{"waiting": true}`` and a read of one stdin line come first when ``--gate``
is given, so a test can start several clients at once.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

from tests.support.clients import OPENAI_MODEL
from tests.support.clients_common import DEFAULT_PROMPT, OPENAI_KEY

_PR_SET_NAME = 15


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--stop-after-errors", type=int, default=3)
    p.add_argument("--gate", action="store_true")
    args = p.parse_args(argv)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, args.name.encode()[:15], 0, 0, 0)
    import openai

    client = openai.OpenAI(
        base_url=args.base_url + "/v1",
        api_key=OPENAI_KEY,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=args.ca),
    )
    if args.gate:
        print(json.dumps({"waiting": True}), flush=True)
        sys.stdin.readline()
    errors = 0
    for i in range(args.calls):
        start = time.time_ns()
        line: dict[str, object] = {"i": i, "start_ns": start}
        try:
            out = client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": DEFAULT_PROMPT}]
            )
            line.update(
                ok=True,
                error=None,
                tokens=out.usage.total_tokens if out.usage else None,
                text=out.choices[0].message.content,
            )
            errors = 0
        except openai.OpenAIError as exc:
            line.update(ok=False, error=type(exc).__name__)
            errors += 1
        line["end_ns"] = time.time_ns()
        print(json.dumps(line), flush=True)
        if errors >= args.stop_after_errors:
            break
        if args.interval:
            time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
