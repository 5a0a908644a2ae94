"""Build hook: generate the contract's Python stubs from protos/ before packaging.

Everything else about the package is in pyproject.toml. The stubs are not committed; they are made here on
every build and editable install (``pip install -e .``), and ``seamline.contract.codegen --check`` (run by
the test suite) catches stubs that fell behind their ``.proto``.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithContract(build_py):
    """build_py that first compiles protos/ into seamline/inspection/v1."""

    def run(self) -> None:
        sys.path.insert(0, str(ROOT))
        try:
            from seamline.contract import codegen
        finally:
            sys.path.pop(0)
        for path in codegen.generate(ROOT / "protos", ROOT):
            print(f"generated {path.relative_to(ROOT)}")
        super().run()


setup(cmdclass={"build_py": BuildPyWithContract})
