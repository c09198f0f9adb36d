"""The layer rule of docs/architecture.md, read from the sources: every
`#include "..."` goes down the layer order or stays in its folder, no two
folders include each other through any chain, no headers form a circle, and
passes/ never reaches a session (it may fold constants with runtime/cpu's
node execution, nothing more)."""
import os
import re
from collections import defaultdict

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Bottom to top.  Folders of one rank may include each other's headers only
# while the folder graph stays free of circles (checked below).
LAYERS = [
    ["ir", "include"],
    ["onnx", "models", "models/tokenizer"],
    ["codegen"],
    ["runtime/cpu"],
    ["passes", "runtime/cuda"],
    ["runtime"],
    ["runtime/data", "runtime/comm"],
    ["runtime/eval", "runtime/train", "runtime/caption"],
    ["runtime/demo"],
    ["tools", "api"],
    ["tests/unit", "tests/fuzz", "bench", "examples"],
]
RANK = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}
# Headers of a lower layer that a given folder still may not reach.
FORBIDDEN = {
    "passes": {"runtime/cpu/session.h"},  # passes fold with exec_node, never a session
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root=ROOT):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "build")) and d not in ("bin", "demo-out")]
        for f in filenames:
            if f.endswith((".c", ".h")):
                yield os.path.normpath(os.path.join(rel, f))


def include_edges(root=ROOT):
    """(includer, included) pairs of files inside the tree, paths relative to root."""
    edges = []
    for src in sources(root):
        with open(os.path.join(root, src), errors="replace") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            target = os.path.normpath(os.path.join(os.path.dirname(src), inc))
            if os.path.exists(os.path.join(root, target)):
                edges.append((src, target))
    return edges


def layer_violations(edges):
    bad = []
    for a, b in edges:
        fa, fb = os.path.dirname(a), os.path.dirname(b)
        if fa == fb:
            continue
        if fa not in RANK or fb not in RANK:
            bad.append(f"{a} -> {b}: folder not in the layer table of tests/test_layers.py")
        elif RANK[fb] > RANK[fa]:
            bad.append(f"{a} -> {b}: {fa} includes {fb}, which sits above it")
        elif b in FORBIDDEN.get(fa, ()):
            bad.append(f"{a} -> {b}: {fa} may not reach {b}")
    return bad


def find_cycle(graph):
    """A list of nodes closing a circle in graph (node -> set of nodes), or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def module(path):
    """A module is a .c/.h pair: what it includes is what its two files include."""
    return os.path.splitext(path)[0]


def circles(edges):
    folders, modules = defaultdict(set), defaultdict(set)
    for a, b in edges:
        if os.path.dirname(a) != os.path.dirname(b):
            folders[os.path.dirname(a)].add(os.path.dirname(b))
        if module(a) != module(b):
            modules[module(a)].add(module(b))
    return find_cycle(folders), find_cycle(modules)


def test_includes_go_down():
    bad = layer_violations(include_edges())
    assert not bad, "includes that break the layer order:\n  " + "\n  ".join(bad)


def test_no_circles():
    folder_cycle, module_cycle = circles(include_edges())
    assert folder_cycle is None, "folders include each other: " + " -> ".join(folder_cycle)
    assert module_cycle is None, "modules include each other: " + " -> ".join(module_cycle)


# The checker itself must be able to fail.
def test_checker_catches_an_upward_include(tmp_path):
    for d in ("ir", "passes"):
        (tmp_path / d).mkdir()
    (tmp_path / "passes" / "p.h").write_text("int p(void);\n")
    (tmp_path / "ir" / "x.c").write_text('#include "../passes/p.h"\n')
    bad = layer_violations(include_edges(str(tmp_path)))
    assert len(bad) == 1 and "sits above it" in bad[0]


def test_checker_catches_a_forbidden_header(tmp_path):
    for d in ("passes", "runtime/cpu"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "runtime" / "cpu" / "session.h").write_text("struct S;\n")
    (tmp_path / "passes" / "fold.c").write_text('#include "../runtime/cpu/session.h"\n')
    assert len(layer_violations(include_edges(str(tmp_path)))) == 1


def test_checker_catches_circles(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "ir" / "a.h").write_text('#include "b.h"\n')
    (tmp_path / "ir" / "b.c").write_text('#include "a.h"\n')
    (tmp_path / "ir" / "b.h").write_text("int b;\n")
    _, module_cycle = circles(include_edges(str(tmp_path)))
    assert module_cycle is not None and "ir/a" in module_cycle
    for d in ("passes", "runtime/cuda"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "passes" / "p.h").write_text('#include "../runtime/cuda/c.h"\n')
    (tmp_path / "runtime" / "cuda" / "c.h").write_text('#include "../../passes/p.h"\n')
    folder_cycle, _ = circles(include_edges(str(tmp_path)))
    assert folder_cycle is not None and "passes" in folder_cycle


# One place decides the pipeline: outside passes/ (which defines them), the
# sessions (which define themselves) and the tests, only the compile API
# runs pass pipelines or makes sessions.
PIPELINE_CALLS = re.compile(r"\b(run_passes|temporal_attention|session_new|cuda_session_new)\s*\(")
PIPELINE_OWNERS = ("runtime/model.c", "runtime/backend_cpu.c", "runtime/backend_cuda.c",
                   "runtime/cpu/session.c", "runtime/cuda/cuda_exec.c")


def pipeline_callers(root=ROOT):
    found = []
    for src in sources(root):
        if not src.endswith(".c") or src.startswith(("passes/", "tests/")) or src in PIPELINE_OWNERS:
            continue
        with open(os.path.join(root, src), errors="replace") as f:
            for n, line in enumerate(f, 1):
                if PIPELINE_CALLS.search(line) and not line.lstrip().startswith(("*", "/*", "//")):
                    found.append(f"{src}:{n}: {line.strip()}")
    return found


def test_one_compile_path():
    found = pipeline_callers()
    assert not found, "pipelines or sessions put together outside runtime/model.c:\n  " + "\n  ".join(found)


def test_one_compile_path_checker_can_fail(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "x.c").write_text("int f(Graph *g) { return run_passes(g, 0, 0, 0, 0); }\n")
    assert len(pipeline_callers(str(tmp_path))) == 1


def test_the_committed_diagram_is_current():
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from architecture_diagram import dot_source
    with open(os.path.join(ROOT, "docs", "architecture.dot")) as f:
        committed = f.read()
    assert committed == dot_source(), "docs/architecture.dot is stale: run python3 tools/architecture_diagram.py"
