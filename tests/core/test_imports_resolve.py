"""reactorkit.core.imports.resolve reads an import path as pkgutil.resolve_name does, without importing pkgutil for
the descriptors' "module:attribute" form (a job's start resolves its class with it)."""

import os
import pkgutil
import subprocess
import sys

import pytest

from reactorkit.core.imports import resolve

PATHS = ["os.path:join", "reactorkit.core.clock:Clock", "json.decoder:JSONDecoder.decode", "os.path",
         "json:", "reactorkit.core.processes.pid_alive"]


@pytest.mark.parametrize("path", PATHS)
def test_an_import_path_leads_where_pkgutil_resolve_name_leads(path):
    assert resolve(path) is pkgutil.resolve_name(path)


@pytest.mark.parametrize("path, error", [("os.path:no_such_name", AttributeError),
                                         ("no_such_module_here:name", ImportError),
                                         ("os:path.no_such_name", AttributeError),
                                         ("os:1path", ValueError), (":join", ValueError), ("os:", None)])
def test_a_path_that_leads_nowhere_fails_as_in_pkgutil(path, error):
    if error is None:  # "module:" is the module itself
        assert resolve(path) is pkgutil.resolve_name(path) is os
        return
    with pytest.raises(error):
        pkgutil.resolve_name(path)
    with pytest.raises(error):
        resolve(path)


def test_something_else_than_a_path_is_returned_as_is():
    marker = object()
    assert resolve(marker) is marker


def test_a_descriptors_path_is_resolved_without_importing_pkgutil():
    code = ("import sys; from reactorkit.core.imports import resolve; "
            "cls = resolve('reactorkit.core.clock:Clock'); print(cls.__name__, 'pkgutil' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["Clock", "False"]
