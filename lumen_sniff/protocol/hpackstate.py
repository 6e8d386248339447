"""One direction's HPACK state, as a passive observer must keep it.

Strategy: every header block a peer sends is decoded, in wire order, by one
``hpack.Decoder`` per direction, whether or not the stream is of interest,
because each block may change the dynamic table the next block refers to.

When bytes of a direction are lost (a capture gap, a mid-connection start, a
block that failed to decode or was too large to keep) the dynamic table is no
longer known. The decoder is then replaced by an empty one of the same size.
That is safe: an encoder numbers its entries newest first, so the entries added
since the loss keep their indices in the real table and decode correctly, while
a reference to anything older lies past the end of our table and raises
instead of yielding a wrong header. A failed decode is reported, never guessed.

``SETTINGS_HEADER_TABLE_SIZE`` announced by the *receiver* bounds the size
updates its peer's encoder may send; hpack rejects an update above its
``max_allowed_table_size``, so the largest value ever announced is applied
(a passive observer cannot know which SETTINGS were acknowledged when) and,
after a loss on the announcing side, any size up to :data:`MAX_TABLE_BYTES`,
which bounds the memory a table can hold.
"""

from __future__ import annotations

import hpack

__all__ = ["DEFAULT_TABLE_SIZE", "MAX_HEADER_LIST_BYTES", "MAX_TABLE_BYTES", "HeaderDecoder"]

DEFAULT_TABLE_SIZE = 4096
"""RFC 7541's initial dynamic table size."""

MAX_HEADER_LIST_BYTES = 1 << 20
"""Largest decoded header list accepted (RFC 7541 entry sizes): bounds memory."""

MAX_TABLE_BYTES = 1 << 20
"""Largest dynamic table honoured; larger updates fail to decode (reported)."""


class HeaderDecoder:
    """Decodes the header blocks one peer sends, tolerating unknown history."""

    __slots__ = ("_allowed", "_decoder", "failures")

    def __init__(self) -> None:
        self._allowed = DEFAULT_TABLE_SIZE
        self._decoder = self._new_decoder(DEFAULT_TABLE_SIZE)
        self.failures = 0
        """Header blocks that could not be decoded."""

    def _new_decoder(self, table_size: int) -> hpack.Decoder:
        decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
        decoder.max_allowed_table_size = self._allowed
        decoder.header_table_size = min(table_size, self._allowed)
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
        self._decoder = self._new_decoder(self._decoder.header_table_size)

    def decode(self, block: bytes) -> list[tuple[str, str]] | None:
        """Decode one complete header block.

        Args:
            block: the concatenated HEADERS/PUSH_PROMISE + CONTINUATION fragments.

        Returns:
            ``(name, value)`` pairs in wire order, names lower-cased and both
            decoded as latin-1; or None when the block cannot be decoded (the
            table is then forgotten, see :meth:`lose_state`).
        """
        try:
            fields = self._decoder.decode(block, raw=True)
        except (hpack.HPACKError, IndexError, ValueError):
            # hpack may have applied part of the block to its table before it
            # failed: the rest of the block's updates are unknown.
            self.failures += 1
            self.lose_state()
            return None
        out: list[tuple[str, str]] = []
        for name, value in fields:
            # raw=True: hpack returns bytes; the model wants latin-1 str.
            out.append((bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1")))
        return out
