"""The repository folders map onto the reactorkit import root, in a built wheel too."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
FOLDERS = {"core": "reactorkit/core", "api": "reactorkit/api", "builtin_plugins": "reactorkit/builtin_plugins"}


def test_a_built_wheel_holds_every_package_under_the_reactorkit_root(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("reactorkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"reactorkit/__init__.py"}
    for folder, target in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            expected.add(f"{target}/{init.parent.relative_to(ROOT / folder).as_posix()}/__init__.py".replace("/./", "/"))
    assert expected <= names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "pio = reactorkit.core.cli.entry:main" in entry_points
    assert "stirring = reactorkit.builtin_plugins.stirring" in entry_points


def test_the_installed_package_imports_under_its_names():
    import reactorkit.api.app
    import reactorkit.builtin_plugins.stirring
    import reactorkit.core.plugins

    assert Path(reactorkit.core.plugins.__file__).parent == ROOT / "core"
