"""HTTP/1.x heads: finding them, parsing them, and finding the next one after a loss.

Pure functions over bytes, used by :mod:`lumen_sniff.protocol.http1.parser`. Every
pattern is bounded, so a line that no pattern can match is known to be junk
after a fixed number of bytes: that is what lets the parser drop junk without
buffering it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumen_sniff.model import Headers, Role

__all__ = [
    "MAX_HEAD_BYTES",
    "MAX_LINE_BYTES",
    "REQUEST_LINE",
    "START_LINE",
    "STATUS_LINE",
    "ParsedHead",
    "find_head_end",
    "find_start_line",
    "parse_head",
]

MAX_HEAD_BYTES = 64 * 1024
"""A header (or trailer) section longer than this is a desync."""
MAX_LINE_BYTES = 8192  # longer than any line the two patterns below can match
_BEFORE_HIT = 8040  # most bytes from a request line's start to its "HTTP/1."
_AFTER_HIT = 1030  # most bytes from "HTTP/1." to the end of a status line
_PEEK = 300  # bytes looked at to tell whether a header field follows

REQUEST_LINE = re.compile(
    rb"([A-Z][A-Z_-]{0,19})[ \t]{1,8}([^\s]{1,8000})[ \t]{1,8}HTTP/1\.([01])[ \t]{0,8}\r?\n"
)
"""A plausible request line, LF included."""
STATUS_LINE = re.compile(rb"HTTP/1\.([01])[ \t]{1,8}([0-9]{3})(?:[ \t][^\r\n]{0,1000})?\r?\n")
"""A plausible status line, LF included."""
START_LINE = (REQUEST_LINE, STATUS_LINE)
"""The start-line pattern of each Role (index by Role)."""
_FIELD = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*:")
_FIELD_PREFIX = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*[ \t]*")
_NO_CODING = frozenset({"", "identity", "chunked"})


@dataclass(slots=True)
class ParsedHead:
    """What a parsed head says, framing included (mutable: the parser adjusts framing)."""

    headers: Headers
    version: str
    method: str = ""
    target: str = ""
    status: int = 0
    authority: str = ""
    length: int | None = None
    chunked: bool = False
    bad_framing: bool = False
    codings: str = ""


def find_head_end(buf: bytes | bytearray, start: int) -> int:
    """Index just past the blank line ending a head, or -1. Bare LFs are tolerated."""
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, crlf + 2 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


def parse_head(role: Role, block: bytes) -> ParsedHead | None:
    """Parse a whole head (start line to blank line); None when the start line is not one."""
    m = START_LINE[role].match(block)
    if m is None:
        return None
    headers: list[tuple[str, str]] = []
    for raw in block[m.end() :].decode("latin-1").split("\n"):
        line = raw.rstrip()
        if not line:
            continue
        if line[0] in " \t":  # obsolete line folding: continues the previous value
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if sep and name:
            headers.append((name, value.strip()))
    if role is Role.REQUEST:
        method, target = m.group(1).decode("ascii"), m.group(2).decode("latin-1")
        head = ParsedHead(
            headers=tuple(headers), version="1." + chr(m.group(3)[0]), method=method, target=target
        )
    else:
        head = ParsedHead(
            headers=tuple(headers), version="1." + chr(m.group(1)[0]), status=int(m.group(2))
        )
    _read_framing(head)
    return head


def _read_framing(head: ParsedHead) -> None:
    lengths: set[str] = set()
    transfer: list[str] = []
    content: list[str] = []
    for name, value in head.headers:
        if name == "content-length":
            lengths.update(v.strip() for v in value.split(","))
        elif name == "transfer-encoding":
            transfer += [t.strip().lower() for t in value.split(",")]
        elif name == "content-encoding":
            content += [t.strip().lower() for t in value.split(",")]
        elif name == "host" and not head.authority:
            head.authority = value.lower()
    if not head.authority and "://" in head.target:  # absolute-form (proxy) target
        head.authority = head.target.split("://", 1)[1].split("/", 1)[0].lower()
    transfer = [t for t in transfer if t]
    if transfer:
        head.chunked = transfer[-1] == "chunked"
        # A request must end in chunked to be framed (RFC 9112 §6.3); a response
        # that does not is read until close.
        head.bad_framing = not head.chunked and head.method != ""
    elif lengths:
        value = lengths.pop() if len(lengths) == 1 else ""
        if value.isdigit() and value.isascii():
            head.length = int(value)
        else:
            head.bad_framing = True
    codings = [c for c in content + transfer if c not in _NO_CODING]
    head.codings = ", ".join(codings)


def find_start_line(buf: bytearray, scan: int, role: Role, line_ok: bool) -> tuple[bool, int, int]:
    """Look for the next plausible start line of ``role``'s side in ``buf``.

    Every start line holds "HTTP/1.", so the scan looks for that and tests the
    line around it. A body rarely ends in a newline, so a start line may begin
    mid-line; it must then be followed by a header field, which keeps a body that
    merely quotes a status line from passing for a head.

    Args:
        buf: Bytes since the place was lost (what was dropped before is gone).
        scan: Where to resume the search for "HTTP/1.".
        role: Whose start line to look for.
        line_ok: Whether ``buf[0]`` begins a line.

    Returns:
        ``(found, cut, scan)``: when found, the start line begins at ``cut``;
        otherwise drop ``buf[:cut]`` (it cannot hold one) and resume at ``scan``,
        counted from the new start of the buffer.
    """
    request = role is Role.REQUEST
    pattern = START_LINE[role]
    while True:
        hit = buf.find(b"HTTP/1.", scan)
        if hit < 0:
            cut = max(buf.rfind(b"\n") + 1, len(buf) - _BEFORE_HIT)
            return False, cut, max(0, len(buf) - cut - 6)
        first = max(buf.rfind(b"\n", 0, hit) + 1, hit - _BEFORE_HIT) if request else hit
        eol = buf.find(b"\n", hit, hit + _AFTER_HIT)
        if eol < 0:
            if len(buf) - hit >= _AFTER_HIT:  # too long a line to be a start line
                scan = hit + 1
                continue
            return False, first, hit - first  # look again when the line is whole
        # [first, eol] holds a single LF, at eol: a match is the whole rest of the line.
        m = pattern.search(buf, first, eol + 1) if request else pattern.match(buf, hit, eol + 1)
        if m is None:
            scan = hit + 1
            continue
        start = m.start()
        if not (buf[start - 1] == 10 if start else line_ok):
            verdict = _header_follows(buf, eol + 1)
            if verdict is None:
                return False, start, hit - start
            if not verdict:
                scan = hit + 1
                continue
        return True, start, 0


def _header_follows(buf: bytearray, at: int) -> bool | None:
    """Whether a header field line starts at ``buf[at]``; None while too few bytes are in."""
    rest = bytes(buf[at : at + _PEEK])
    if _FIELD.match(rest):
        return True
    if len(rest) < _PEEK and _FIELD_PREFIX.fullmatch(rest):
        return None
    return False
