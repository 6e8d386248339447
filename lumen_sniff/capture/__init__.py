"""Capture edges: everything that turns kernel records or packets into Chunks.

- :mod:`lumen_sniff.capture.bpf`: eBPF uprobes on TLS libraries (kernel edge);
- :mod:`lumen_sniff.capture.tcp`: pure TCP reassembly;
- :mod:`lumen_sniff.capture.pcap`: live sniffing and capture files, fed to ``tcp``.
"""
