"""A virtualenv of a test's own for tests that pip-install a plugin: what they install stays out of the virtualenv
the suite runs in (where it would change the plugins and jobs every later test sees)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path


def own_venv(folder: Path) -> Path:
    """Create a virtualenv in ``folder`` that also sees this interpreter's packages; returns its ``python``.

    The new environment's site-packages gets a ``.pth`` file that adds this interpreter's site-packages as a site
    folder (``site.addsitedir``: its own ``.pth`` files apply too, e.g. the editable install of reactorkit), after
    the new environment's own. ``python -m pip install …`` run with the returned interpreter installs into
    ``folder`` (pip, setuptools and reactorkit come from this interpreter's environment, unchanged).

    Args:
        folder: Where the virtualenv is made (must not exist yet, or be empty).

    Raises:
        subprocess.CalledProcessError: the new interpreter does not start.
    """
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_reactorkit_test_shared.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    return python


def distributions(python: Path | str = sys.executable) -> list[str]:
    """``pip list`` of ``python``'s environment as ``name==version`` lines (sorted), for a check that a test left
    it as it was."""
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    return sorted(line for line in out.splitlines() if line.strip())
