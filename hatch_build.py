"""Hatchling build hook: compiles media_store/_speedups.c, the optional C paths of the word
writers, into the wheel (for an editable install, next to the source).

Optional by design: without a C compiler and Python's headers the build goes on, pure
Python, with a warning, and the library runs the Python originals of those paths (same
results, same errors; slower). ``MEDIA_STORE_PURE_PYTHON=1`` skips the compilation.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "media_store._speedups"
SOURCE = "media_store/_speedups.c"


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("MEDIA_STORE_PURE_PYTHON"):
            return
        editable = version == "editable"
        try:
            built = self._compile(Path(self.root), in_place=editable)
        except Exception as exc:  # no compiler, no headers: the pure-Python wheel
            self.app.display_warning(f"{MODULE} not compiled ({exc}): pure-Python paths only")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:  # an editable install imports it from the source tree
            build_data["force_include"][str(built)] = f"media_store/{built.name}"

    def _compile(self, root: Path, *, in_place: bool) -> Path:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        out = Path(tempfile.mkdtemp(prefix="media_store_build_"))
        extension = Extension(MODULE, [SOURCE], extra_compile_args=["-O2"])
        distribution = Distribution({"name": "media_store_speedups", "ext_modules": [extension]})
        distribution.script_name = "hatch_build.py"
        command = build_ext(distribution)
        command.inplace = in_place
        command.build_lib = str(out / "lib")
        command.build_temp = str(out / "temp")
        command.ensure_finalized()
        cwd = Path.cwd()
        os.chdir(root)  # setuptools resolves the source and an in-place target from here
        try:
            command.run()
            return (root / command.get_ext_fullpath(MODULE)).resolve()
        finally:
            os.chdir(cwd)
