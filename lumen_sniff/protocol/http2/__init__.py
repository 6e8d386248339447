"""HTTP/2 for a passive observer: ``parser`` (the frame state table), ``side`` (one
direction's framing state), ``frames`` (frame header checks, finding a frame
boundary), ``control`` (frames read whole: header blocks, SETTINGS, RST_STREAM,
GOAWAY), ``headerblocks`` (HEADERS + CONTINUATION), ``hpackstate`` (a lossy HPACK
decoder), ``streams`` (the stream table)."""
