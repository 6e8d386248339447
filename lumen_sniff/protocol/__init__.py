"""Pure protocol decoding: bytes of one connection in, HTTP events out. No I/O."""
