"""Declares the Cython extensions only; metadata lives in pyproject.toml.

OpenMP is probed with the compiler in use: if a tiny program using omp.h does not build, the
kernel is built serially (prange becomes a plain loop) instead of failing the install.
Set DRG_CYTHON_DEBUG=1 for a debug build (bounds checks on, -O0 -g).
"""

import os
import shutil
import subprocess
import sys
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("DRG_CYTHON_DEBUG") == "1"


def openmp_flags() -> list[str]:
    if os.environ.get("DRG_NO_OPENMP") == "1":
        return []
    if sys.platform == "win32":
        return ["/openmp"]
    cc = os.environ.get("CC", "cc")
    flag = ["-Xpreprocessor", "-fopenmp"] if sys.platform == "darwin" else ["-fopenmp"]
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as fh:
            fh.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        link = flag + (["-lomp"] if sys.platform == "darwin" else [])
        ok = subprocess.run([cc, src, "-o", os.path.join(tmp, "omp"), *link],
                            capture_output=True).returncode == 0
    except OSError:
        ok = False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        print("drg-grouper: OpenMP not available, building the kernel single-threaded", file=sys.stderr)
        return []
    return flag


omp = openmp_flags()
opt = ["-O0", "-g"] if DEBUG else ["-O3"]
extensions = [
    Extension(
        "grouper.engine._kernel",
        ["grouper/engine/_kernel.pyx"],
        extra_compile_args=[*opt, *omp],
        extra_link_args=[*omp] + (["-lomp"] if sys.platform == "darwin" and omp else []),
    ),
    Extension("grouper.engine._codes", ["grouper/engine/_codes.pyx"], extra_compile_args=opt),
]
directives = {"language_level": 3, "boundscheck": DEBUG, "wraparound": DEBUG,
              "initializedcheck": DEBUG, "cdivision": True}
setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["grouper/engine"]))
