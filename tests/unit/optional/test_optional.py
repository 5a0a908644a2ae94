"""require: a missing package names the extra to install; a broken installed one shows its own error."""

from __future__ import annotations

import sys

import pytest

from seamline.errors import MissingDependencyError
from seamline.optional import require


def test_an_installed_module_is_returned():
    assert require("json.decoder", "Reading JSON", extra="core") is sys.modules["json.decoder"]


def test_a_missing_package_names_its_distribution_and_extra():
    with pytest.raises(MissingDependencyError, match=r"'not-here' package.*seamline\[edge\]") as caught:
        require("not_here_seamline.client", "The thing", extra="edge", package="not-here")
    assert (caught.value.package, caught.value.extra) == ("not-here", "edge")


def test_a_failing_import_inside_an_installed_package_is_not_called_missing(tmp_path, monkeypatch):
    package = tmp_path / "seamline_broken_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import seamline_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        require("seamline_broken_pkg", "The thing", extra="edge")
    assert not isinstance(caught.value, MissingDependencyError)
    assert caught.value.name == "seamline_absent_dependency"
