"""The replay hot loop: capture records in, reassembled Chunks out, fused.

Strategy: a frame costs what Python spends on it, so the common case makes no
function call before the reassembler's. A classic pcap is walked in place (see
:meth:`~lumen_sniff.capture.pcap.pcapfile.CaptureFile.pcap_layout`); for Ethernet
with IPv4 without options, nearly every frame of a capture, the record header
and the link, IP and TCP fields come from two ``unpack_from`` calls, and the
directional key and the payload from two slices, right here. Every other frame
(another link type, IPv6, options, fragments, cut frames) goes through
:func:`~lumen_sniff.capture.tcp.segments.tcp_fields`, which reads the same fields
the same way and handles the rest; tests check that both agree. pcapng files
go frame by frame through :meth:`~lumen_sniff.capture.pcap.pcapfile.CaptureFile.raw`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from lumen_sniff.capture.pcap.pcapfile import CaptureFile
from lumen_sniff.capture.tcp.reassembler import TcpReassembler
from lumen_sniff.capture.tcp.segments import ETHERNET_IPV4_TCP, LINKTYPE_ETHERNET, tcp_fields
from lumen_sniff.model import Chunk

__all__ = ["scan_capture"]

_MIN_FAST_CAPLEN = ETHERNET_IPV4_TCP.size


def scan_capture(
    capture: CaptureFile,
    reasm: TcpReassembler,
    deliver: Callable[[list[Chunk]], None],
    skipped: Counter[str],
) -> None:
    """Feed every frame of ``capture`` to ``reasm``; hand Chunks to ``deliver`` as they come.

    Args:
        capture: an open capture file.
        reasm: the reassembler; its ``out`` list is handed to ``deliver``,
            which must empty it.
        deliver: takes the Chunks made deliverable by a frame.
        skipped: counts frames without usable TCP, by reason.

    Raises:
        ReplayError: the file is damaged (after every frame before the damage
            was fed).
    """
    out = reasm.out
    feed = reasm.feed_tcp
    if capture.format != "pcap":
        for linktype, ts_ns, buf, start, end, _wire_len in capture.raw():
            fields = tcp_fields(linktype, buf, start, end)
            if isinstance(fields, str):
                skipped[fields] += 1
                continue
            feed(*fields, ts_ns)
            if out:
                deliver(out)
        return
    view, size, offset, record, scale, linktype, max_caplen = capture.pcap_layout()
    unpack_record = record.unpack_from
    unpack_fast = ETHERNET_IPV4_TCP.unpack_from
    ethernet = linktype == LINKTYPE_ETHERNET
    count = 0
    while offset + 16 <= size:
        sec, frac, caplen, _wirelen = unpack_record(view, offset)
        start = offset + 16
        end = start + caplen
        if end > size or caplen > max_caplen:
            raise capture.record_error(offset, caplen, count)
        offset = end
        count += 1
        ts_ns = sec * 1_000_000_000 + frac * scale
        if ethernet and caplen >= _MIN_FAST_CAPLEN:
            ethertype, vihl, total, frag, proto, seq, data_offset, flags = unpack_fast(view, start)
            if ethertype == 0x0800 and vihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                ip_end = start + 14 + total if total else end
                payload_start = start + 34 + (data_offset >> 4) * 4
                if payload_start <= ip_end <= end:  # else cut: tcp_fields says how
                    feed(view[start + 26 : start + 38], seq, flags,
                         view[payload_start:ip_end], 0, ts_ns)  # fmt: skip
                    if out:
                        deliver(out)
                    continue
        fields = tcp_fields(linktype, view, start, end)
        if isinstance(fields, str):
            skipped[fields] += 1
            continue
        feed(*fields, ts_ns)
        if out:
            deliver(out)
    capture.frames_read = count
    if offset != size:
        raise capture.record_error(offset, None, count)
