"""The import layers of pyproject.toml's [tool.importlinter] contracts hold, checked by lint-imports.

import-linter walks a package's folder, so the check runs over the layout a wheel installs
(``setup.py build_py`` applies the repository's folder mapping: ``core/`` → ``reactorkit/core`` …).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"


@pytest.fixture(scope="module")
def installed_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``reactorkit`` package laid out as installed, under a temporary folder."""
    target = tmp_path_factory.mktemp("layout")
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(target)], cwd=REPO,
                   check=True, capture_output=True)
    assert (target / "reactorkit" / "core" / "plugins.py").is_file()
    assert (target / "reactorkit" / "plugin" / "__init__.py").is_file()
    return target


def lint_imports(layout: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is not installed in this environment: run scripts/setup.sh"
    env = dict(os.environ, PYTHONPATH=str(layout))
    return subprocess.run([str(lint), str(PYPROJECT), "--no-cache"], cwd=layout, env=env, capture_output=True,
                          text=True, timeout=300)


def test_every_import_layer_contract_is_kept(installed_layout: Path):
    result = lint_imports(installed_layout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    for contract in ("core imports neither", "built-in plugins reach reactorkit only through reactorkit.plugin",
                     "built-in plugins do not import each other", "the HTTP app does not import a plugin"):
        assert f"{contract}" in result.stdout


def test_a_plugin_importing_api_internals_breaks_the_public_api_contract(installed_layout: Path, tmp_path: Path):
    import shutil

    layout = tmp_path / "layout"
    shutil.copytree(installed_layout, layout)
    offender = layout / "reactorkit" / "builtin_plugins" / "stirring" / "offender.py"
    offender.write_text("from reactorkit.api.unit.common import read_body\n")
    result = lint_imports(layout)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "reactorkit.builtin_plugins.stirring.offender -> reactorkit.api.unit.common" in result.stdout


def test_core_importing_a_plugin_breaks_the_core_contract(installed_layout: Path, tmp_path: Path):
    import shutil

    layout = tmp_path / "layout"
    shutil.copytree(installed_layout, layout)
    (layout / "reactorkit" / "core" / "offender.py").write_text("import reactorkit.builtin_plugins.dosing.pumps\n")
    result = lint_imports(layout)
    assert result.returncode != 0
    assert "reactorkit.core.offender -> reactorkit.builtin_plugins.dosing.pumps" in result.stdout
