"""The daemon's BPF runtime: compiled objects loaded with libbpf, no bcc in process.

- :mod:`.compiler`: the compile child, the only importer of bcc (and LLVM);
- :mod:`.cache`: compiled objects from the on-disk cache or a compile child;
- :mod:`.obj`: the compiled object and its structural checks;
- :mod:`.loaded`: maps created, programs loaded, probes and links attached;
- :mod:`.maps`: a map as a Python mapping (bcc's table API subset);
- :mod:`.ringbuf`: one blocking reader for every ring buffer, with fill levels;
- :mod:`.uprobes`: symbol or address → file offset for a uprobe;
- :mod:`.libbpf`: ctypes bindings to libbpf and bcc's LLVM-free libbcc_bpf.
"""
