"""The CPU a benchmark ran on, by name, family/model and the features that
pick our kernels (a hypervisor may hide the marketing name): every results
table names it, and tables of different CPUs are kept side by side."""
import platform


def cpu_description():
    info = {}
    for line in open("/proc/cpuinfo"):
        k, _, v = line.partition(":")
        info.setdefault(k.strip(), v.strip())
    flags = set(info.get("flags", "").split())
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
    feats = ", ".join(n for f, n in names.items() if f in flags) or "no AVX2"
    return (f"{info.get('model name', platform.processor())} (family {info.get('cpu family', '?')}, "
            f"model {info.get('model', '?')}; {feats})")


def cpu_slug(description):
    """A file name for a CPU's results table (bench/results/<bench>/<slug>.md)."""
    import re
    return re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")[:80]
