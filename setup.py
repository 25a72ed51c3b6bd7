"""Declares the Cython extensions only; metadata lives in pyproject.toml.

The kernel is single-threaded C (no OpenMP): ``Grouper`` runs slices of a batch on its own
thread pool, the kernel releasing the GIL.
Set DRG_CYTHON_DEBUG=1 for a debug build (bounds checks on, -O0 -g).
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("DRG_CYTHON_DEBUG") == "1"
opt = ["-O0", "-g"] if DEBUG else ["-O3"]
extensions = [
    Extension("grouper.engine._kernel", ["grouper/engine/_kernel.pyx"], extra_compile_args=opt),
    Extension("grouper.engine._codes", ["grouper/engine/_codes.pyx"], extra_compile_args=opt),
    Extension("grouper.io._gb18030", ["grouper/io/_gb18030.pyx"], extra_compile_args=opt),
    Extension("grouper.analytics._cells", ["grouper/analytics/_cells.pyx"], extra_compile_args=opt),
]
directives = {"language_level": 3, "boundscheck": DEBUG, "wraparound": DEBUG,
              "initializedcheck": DEBUG, "cdivision": True}
setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["grouper/engine"]))
