"""Re-chunking captured bytes: the pipeline must give the same events however split."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from lumen_sniff.model import Chunk

__all__ = ["split_chunks"]


def split_chunks(chunks: list[Chunk], cuts: random.Random | None) -> list[Chunk]:
    """Each chunk cut one byte per Chunk (``cuts`` None) or at random places."""
    out = []
    for chunk in chunks:
        data = chunk.data
        if not data:
            out.append(chunk)
            continue
        if cuts is None:
            bounds = list(range(len(data) + 1))
        else:
            inner = sorted(cuts.sample(range(1, len(data)), min(len(data) - 1, cuts.randint(0, 8))))
            bounds = [0, *inner, len(data)]
        for a, b in itertools.pairwise(bounds):
            out.append(replace(chunk, offset=chunk.offset + a, data=data[a:b],
                               closed=chunk.closed and b == len(data)))
    return out
