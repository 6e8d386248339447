"""Go programs: crypto/tls found through Go's own function table, probes at entry and RET."""
