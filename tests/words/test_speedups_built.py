"""The install compiled media_store/_speedups.c wherever a C compiler is.

Apart from tests/words/test_speedups.py, which skips as a whole when the module is missing: a
build that fell back to pure Python would pass there by skipping, and fails here.
"""

from __future__ import annotations

import os
import shutil
import sysconfig

import pytest

from media_store.words import timestamps


def test_the_compiled_reader_is_built_by_the_install() -> None:
    """``make install`` compiles it (hatch_build.py) wherever a C compiler is."""
    if os.environ.get("MEDIA_STORE_PURE_PYTHON"):
        pytest.skip("MEDIA_STORE_PURE_PYTHON is set: the install skipped the compilation")
    compiler = sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        pytest.skip(f"no C compiler ({compiler}): the install is pure Python")
    assert timestamps._columns is not None
