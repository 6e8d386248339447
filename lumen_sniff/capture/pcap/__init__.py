"""Packets from a wire or a file: the live sniffer (``sniffer``), pcap/pcapng reading
(``pcapfile``), the replay hot loop (``scan``, ``replay``) and TLS key-log decryption
(``keylog``). Each feeds :mod:`lumen_sniff.capture.tcp`."""
