#!/usr/bin/env python3
"""Draws docs/architecture.svg (and .dot): the folders as boxes in their
layers, bottom to top, and an arrow for every folder that includes another.  Read from the sources by the same code
that tests/test_layers.py checks them with, so the picture cannot drift.

    python3 tools/architecture_diagram.py    # needs Graphviz's `dot` for the SVG
"""
import collections
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from test_layers import LAYERS, include_edges  # noqa: E402


def dot_source():
    counts = collections.Counter()
    for a, b in include_edges():
        fa, fb = os.path.dirname(a), os.path.dirname(b)
        if fa != fb and not fa.startswith(("tests", "bench", "examples")):
            counts[(fa, fb)] += 1
    lines = ["digraph vclip {", '  rankdir=TB; node [shape=box, fontname="sans-serif"]; edge [color="#888888"];']
    for rank, folders in enumerate(LAYERS):
        present = [f for f in folders if os.path.isdir(os.path.join(ROOT, f)) and not f.startswith(("tests", "bench", "examples"))]
        if present:
            lines.append("  { rank=same; " + " ".join(f'"{f}";' for f in present) + " }")
    for a, b in sorted(counts):
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    src = dot_source()
    with open(os.path.join(ROOT, "docs", "architecture.dot"), "w") as f:
        f.write(src)
    dot = shutil.which("dot")
    if not dot:
        sys.exit("architecture_diagram: wrote docs/architecture.dot; install Graphviz (apt-get install graphviz) for the SVG")
    svg = subprocess.run([dot, "-Tsvg"], input=src, capture_output=True, text=True, check=True).stdout
    with open(os.path.join(ROOT, "docs", "architecture.svg"), "w") as f:
        f.write(svg)
    print("wrote docs/architecture.dot and docs/architecture.svg")


if __name__ == "__main__":
    main()
