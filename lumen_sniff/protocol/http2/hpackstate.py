"""One direction's HPACK state, as a passive observer must keep it.

Strategy: every header block a peer sends is decoded, in wire order, by one
``hpack.Decoder`` per direction, whether or not the stream is of interest,
because each block may change the dynamic table the next block refers to.

When bytes of a direction are lost (a capture gap, a mid-connection start, a
block too large to keep) the dynamic table is no longer known. Its entries are
forgotten, and the table (:class:`_LossyTable`, a ``hpack.table.HeaderTable``)
remembers that an unknown *tail* of older entries may follow the ones added
since. An encoder numbers entries newest first and we still see every
insertion, so every entry keeps its real index: nothing can decode to a wrong
field. A reference into the tail gives an *unknown* field, so the block is
reported undecodable (never guessed), but decoding goes on to the block's end
and the table keeps every insertion. An insertion whose name is unknown is kept
as a placeholder (its value known, its name counted as one byte: a lower bound
of its size, so no entry is evicted before the real encoder evicts it). Once
the entries known since the loss overflow the table, the tail has certainly
been evicted and the table is exact again. A block that cannot be parsed at
all (corrupt, truncated) forgets the table.

``SETTINGS_HEADER_TABLE_SIZE`` announced by the *receiver* bounds the size
updates its peer's encoder may send; hpack rejects an update above its
``max_allowed_table_size``, so the largest value ever announced is applied
(a passive observer cannot know which SETTINGS were acknowledged when) and,
after a loss on the announcing side, any size up to :data:`MAX_TABLE_BYTES`,
which bounds the memory a table can hold.
"""

from __future__ import annotations

import hpack
from hpack.table import HeaderTable, table_entry_size

__all__ = ["DEFAULT_TABLE_SIZE", "MAX_HEADER_LIST_BYTES", "MAX_TABLE_BYTES", "HeaderDecoder"]

DEFAULT_TABLE_SIZE = 4096
"""RFC 7541's initial dynamic table size."""

MAX_HEADER_LIST_BYTES = 1 << 20
"""Largest decoded header list accepted (RFC 7541 entry sizes): bounds memory."""

MAX_TABLE_BYTES = 1 << 20
"""Largest dynamic table honoured; larger updates fail to decode (reported)."""

_UNKNOWN = b"\x00"
"""The name of an unknown field or placeholder entry: one byte, the smallest a
name can be (for eviction), and a NUL, which no valid field name contains."""
_ENTRY_OVERHEAD = 32
"""RFC 7541 §4.1: an entry's size is its name and value lengths plus 32."""


class _LossyTable(HeaderTable):
    """A dynamic table that may be followed by an unknown tail of older entries."""

    def __init__(self, maxsize: int, *, unknown_tail: bool) -> None:
        super().__init__()
        self._maxsize = maxsize
        self.unknown_tail = unknown_tail

    def get_by_index(self, index: int) -> tuple[bytes, bytes]:
        if (self.unknown_tail
                and index > HeaderTable.STATIC_TABLE_LENGTH + len(self.dynamic_entries)):
            return _UNKNOWN, _UNKNOWN
        return super().get_by_index(index)

    def add(self, name: bytes, value: bytes) -> None:
        if self._current_size + table_entry_size(name, value) > self._maxsize:
            # Even the (lower-bound) sizes of the entries since the loss
            # overflow: everything older has been evicted.
            self.unknown_tail = False
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        if newmax < self._current_size + _ENTRY_OVERHEAD:
            self.unknown_tail = False  # no room left for even one older entry
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class HeaderDecoder:
    """Decodes the header blocks one peer sends, tolerating unknown history."""

    __slots__ = ("_allowed", "_decoder", "failures")

    def __init__(self) -> None:
        self._allowed = DEFAULT_TABLE_SIZE
        self._decoder = self._new_decoder(DEFAULT_TABLE_SIZE)
        self.failures = 0
        """Header blocks that could not be decoded."""

    def _new_decoder(self, table_size: int, *, unknown_tail: bool = False) -> hpack.Decoder:
        decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
        decoder.max_allowed_table_size = self._allowed
        decoder.header_table = _LossyTable(min(table_size, self._allowed),
                                           unknown_tail=unknown_tail)
        return decoder

    def announce_table_size(self, size: int) -> None:
        """The receiver announced SETTINGS_HEADER_TABLE_SIZE = ``size``."""
        size = min(size, MAX_TABLE_BYTES)
        if size > self._allowed:
            self._allowed = size
            self._decoder.max_allowed_table_size = size

    def allow_any_table_size(self) -> None:
        """The receiver's SETTINGS may have been lost: accept any size update."""
        self.announce_table_size(MAX_TABLE_BYTES)

    def lose_state(self) -> None:
        """Forget the dynamic table (its updates were lost); keep its size."""
        self._decoder = self._new_decoder(self._decoder.header_table_size, unknown_tail=True)

    def decode(self, block: bytes) -> list[tuple[str, str]] | None:
        """Decode one complete header block.

        Args:
            block: the concatenated HEADERS/PUSH_PROMISE + CONTINUATION fragments.

        Returns:
            ``(name, value)`` pairs in wire order, names lower-cased and both
            decoded as latin-1; or None when the block refers to forgotten
            entries (the table stays aligned) or cannot be parsed (the table
            is then forgotten, see :meth:`lose_state`).
        """
        try:
            fields = self._decoder.decode(block, raw=True)
        except (hpack.HPACKError, IndexError, ValueError):
            # hpack may have applied part of the block to its table before it
            # failed: the rest of the block's updates are unknown.
            self.failures += 1
            self.lose_state()
            return None
        if any(name == _UNKNOWN for name, _ in fields):
            self.failures += 1
            return None
        out: list[tuple[str, str]] = []
        for name, value in fields:
            # raw=True: hpack returns bytes; the model wants latin-1 str.
            out.append((bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1")))
        return out
