"""Builds the vclip package around the C library: the wheel carries the
libvclip.so that `make` built (../build/libvclip.so, or $VCLIP_LIBRARY) and
the BPE vocabulary it reads, so an installed package needs nothing from the
source tree.  Build the library first: `make` in the repository root."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VOCAB = os.path.join("models", "tokenizer", "bpe_simple_vocab_16e6.txt.gz")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        lib = os.environ.get("VCLIP_LIBRARY") or os.path.join(ROOT, "build", "libvclip.so")
        if not os.path.exists(lib):
            raise SystemExit(f"vclip: {lib} does not exist: run `make` in the repository root first "
                             "(or set VCLIP_LIBRARY to a libvclip.so)")
        dest = os.path.join(self.build_lib, "vclip")
        shutil.copy2(lib, os.path.join(dest, "libvclip.so"))
        data = os.path.join(dest, "vclip-data", VOCAB)  # where libvclip.so looks beside itself (ir/base.c's data_path)
        os.makedirs(os.path.dirname(data), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, VOCAB), data)


setup(cmdclass={"build_py": BuildWithLibrary})
