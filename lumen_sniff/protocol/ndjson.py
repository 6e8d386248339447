"""Incremental newline-delimited JSON (NDJSON / JSON Lines) framer.

Strategy
--------
Records are separated by LF; a CR before the LF and surrounding blanks are
stripped, and blank lines are skipped. The framer does not parse JSON: it
hands out each record's bytes, and the caller decides whether the record is
worth parsing. The unfinished last line waits in a buffer; at the end of the
stream (``close``) it is returned as a record, because many servers omit the
final newline. One record may hold at most ``max_record_bytes``; a longer line
is dropped and counted (``oversize_count`` / ``oversize_bytes``) instead of
being buffered.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "NdjsonParser"]

DEFAULT_MAX_RECORD_BYTES = 4 << 20
"""Default cap on one record: 4 MiB."""

_BLANKS = b" \t\r\n"


class NdjsonParser:
    """Split a byte stream into JSON-lines records; never raises."""

    __slots__ = ("_max", "_partial", "_skipping", "oversize_bytes", "oversize_count")

    def __init__(self, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        """Create a framer.

        Args:
            max_record_bytes: Cap on one record.
        """
        self._max = max_record_bytes
        self._partial = b""
        self._skipping = False
        self.oversize_count = 0
        """Records dropped for exceeding the cap."""
        self.oversize_bytes = 0
        """Bytes dropped with them."""

    def feed(self, data: bytes) -> list[bytes]:
        """Consume the next bytes.

        Args:
            data: Any piece of the stream.

        Returns:
            The records completed by these bytes, stripped, in order.
        """
        if b"\n" not in data:
            self._grow(data)
            return []
        lines = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        self._partial = b""
        tail = lines.pop()
        if self._skipping:
            self._skipping = False
            self.oversize_bytes += len(lines[0])
            del lines[0]
        out: list[bytes] = []
        for line in lines:
            self._emit(line, out)
        self._grow(tail)
        return out

    def close(self) -> list[bytes]:
        """End of stream: return the last record if it had no newline.

        Returns:
            Zero or one record.
        """
        out: list[bytes] = []
        if not self._skipping:
            self._emit(self._partial, out)
        self._partial = b""
        self._skipping = False
        return out

    def _emit(self, line: bytes, out: list[bytes]) -> None:
        if len(line) > self._max:
            self.oversize_count += 1
            self.oversize_bytes += len(line)
            return
        line = line.strip(_BLANKS)
        if line:
            out.append(line)

    def _grow(self, piece: bytes) -> None:
        if self._skipping:
            self.oversize_bytes += len(piece)
            return
        if not piece:
            return
        self._partial = self._partial + piece if self._partial else piece
        if len(self._partial) > self._max:
            self.oversize_count += 1
            self.oversize_bytes += len(self._partial)
            self._partial = b""
            self._skipping = True
