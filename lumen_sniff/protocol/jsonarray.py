"""Incremental splitter for one JSON array streamed element by element.

Gemini's ``streamGenerateContent`` without ``alt=sse`` sends a single JSON
array whose elements arrive over time: ``[{…}\\n,\\r\\n{…}\\n]``. A client that
waits for the closing bracket learns nothing until the end, so we cut the
array into its top-level elements as they complete.

Strategy
--------
A small state machine over the bytes, with no JSON parsing:

=========  ====================================  ===========================
state      input                                 next
=========  ====================================  ===========================
BEFORE     blank (or a leading BOM)              BEFORE
BEFORE     ``[``                                 BETWEEN
BEFORE     anything else                         INVALID (``not_array``)
BETWEEN    blank or ``,``                        BETWEEN
BETWEEN    ``]``                                 END (``ended``)
BETWEEN    ``{`` ``[`` ``"`` or a scalar byte    ELEMENT
ELEMENT    end of the value (depth back to 0,    BETWEEN (element emitted)
           closing quote, or a scalar's end)
END        anything                              END (non-blank is counted)
INVALID    anything                              INVALID
=========  ====================================  ===========================

Inside an element, only ``{ } [ ] "`` matter outside strings and only ``"`` and
``\\`` inside them; a regular expression finds the next one at C speed. An
escape that straddles two pieces is remembered (``_escape``). An element may
hold at most ``max_element_bytes``; past that its bytes are dropped and counted
while the scan goes on to find where it ends.
"""

from __future__ import annotations

import enum
import re

__all__ = ["DEFAULT_MAX_ELEMENT_BYTES", "JsonArraySplitter"]

DEFAULT_MAX_ELEMENT_BYTES = 4 << 20
"""Default cap on one element: 4 MiB."""

_BLANK = frozenset(b" \t\r\n")
_STRUCT = re.compile(rb'[{}\[\]"]')
_IN_STRING = re.compile(rb'["\\]')
_SCALAR_END = re.compile(rb"[,\]\s]")
_BOM = b"\xef\xbb\xbf"


class _State(enum.IntEnum):
    BEFORE = 0
    BETWEEN = 1
    ELEMENT = 2
    END = 3
    INVALID = 4


class JsonArraySplitter:
    """Split a streamed top-level JSON array into element bytes; never raises."""

    __slots__ = (
        "_bom",
        "_depth",
        "_elem",
        "_escape",
        "_in_string",
        "_max",
        "_over",
        "_scalar",
        "_state",
        "oversize_bytes",
        "oversize_count",
        "trailing_bytes",
    )

    def __init__(self, *, max_element_bytes: int = DEFAULT_MAX_ELEMENT_BYTES) -> None:
        """Create a splitter.

        Args:
            max_element_bytes: Cap on one element.
        """
        self._max = max_element_bytes
        self._state = _State.BEFORE
        self._bom = 0
        self._elem = bytearray()
        self._over = False
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._scalar = False
        self.oversize_count = 0
        """Elements dropped for exceeding the cap."""
        self.oversize_bytes = 0
        """Bytes dropped with them."""
        self.trailing_bytes = 0
        """Non-blank bytes seen after the closing bracket."""

    @property
    def started(self) -> bool:
        """The opening bracket was seen."""
        return self._state in (_State.BETWEEN, _State.ELEMENT, _State.END)

    @property
    def ended(self) -> bool:
        """The closing bracket was seen."""
        return self._state is _State.END

    @property
    def not_array(self) -> bool:
        """The stream did not start with ``[``: nothing will be split."""
        return self._state is _State.INVALID

    def feed(self, data: bytes) -> list[bytes]:
        """Consume the next bytes.

        Args:
            data: Any piece of the stream.

        Returns:
            The elements completed by these bytes, as raw JSON bytes, in order.
        """
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state is _State.ELEMENT:
                i = self._scan(data, i, out)
            elif state is _State.BETWEEN:
                c = data[i]
                if c in _BLANK or c == 0x2C:  # ','
                    i += 1
                elif c == 0x5D:  # ']'
                    self._state = _State.END
                    i += 1
                else:
                    self._begin(c)
            elif state is _State.BEFORE:
                c = data[i]
                if self._bom < 3 and c == _BOM[self._bom]:
                    self._bom += 1
                    i += 1
                elif c in _BLANK:
                    i += 1
                elif c == 0x5B:  # '['
                    self._state = _State.BETWEEN
                    i += 1
                else:
                    self._state = _State.INVALID
            elif state is _State.END:
                self.trailing_bytes += sum(1 for c in data[i:] if c not in _BLANK)
                i = n
            else:
                i = n
        return out

    def close(self) -> list[bytes]:
        """End of stream: a finished scalar element may still be pending.

        Returns:
            The last element when it was a scalar ended by the stream's end;
            an unfinished object, array or string is dropped.
        """
        out: list[bytes] = []
        if self._state is _State.ELEMENT and self._scalar and not self._over:
            out.append(bytes(self._elem))
        self._elem.clear()
        return out

    # ------------------------------------------------------------------ helpers

    def _begin(self, c: int) -> None:
        self._state = _State.ELEMENT
        self._elem.clear()
        self._over = False
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._scalar = c not in b'{["'

    def _scan(self, data: bytes, i: int, out: list[bytes]) -> int:
        """Scan element bytes from ``i``; return where the scan stopped."""
        start, n = i, len(data)
        end = -1
        if self._scalar:
            m = _SCALAR_END.search(data, i)
            if m is not None:
                end = m.start()
            i = n if end < 0 else end
        else:
            while i < n:
                if self._escape:
                    self._escape = False
                    i += 1
                    continue
                if self._in_string:
                    m = _IN_STRING.search(data, i)
                    if m is None:
                        i = n
                        break
                    i = m.end()
                    if data[m.start()] == 0x5C:  # backslash
                        self._escape = True
                        continue
                    self._in_string = False
                    if self._depth == 0:
                        end = i
                        break
                    continue
                m = _STRUCT.search(data, i)
                if m is None:
                    i = n
                    break
                i = m.end()
                c = data[m.start()]
                if c == 0x22:  # '"'
                    self._in_string = True
                elif c in (0x7B, 0x5B):  # '{' '['
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth <= 0:
                        end = i
                        break
        self._keep(data, start, i if end < 0 else end)
        if end >= 0:
            if self._over:
                self.oversize_count += 1
            else:
                out.append(bytes(self._elem))
            self._elem.clear()
            self._state = _State.BETWEEN
            return end
        return i

    def _keep(self, data: bytes, start: int, stop: int) -> None:
        if self._over:
            self.oversize_bytes += stop - start
            return
        self._elem += data[start:stop]
        if len(self._elem) > self._max:
            self.oversize_bytes += len(self._elem)
            self._elem.clear()
            self._over = True
