"""Pure TCP: frames to segments (``segments``), flows and their halves (``flow``),
reassembly into ordered per-direction Chunks (``reassembler``, ``delivery``). No I/O."""
