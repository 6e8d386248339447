"""Capture edges: everything that turns kernel records or packets into Chunks."""
