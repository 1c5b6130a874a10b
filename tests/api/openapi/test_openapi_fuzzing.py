"""schemathesis against a real leader (gunicorn, rq worker, Redis, mosquitto) and one worker.

Every operation of ``/unit_api/openapi.json`` and ``/api/openapi.json`` is fuzzed
(the examples, coverage and fuzzing phases, a few examples per operation), with
the checks: no server error, responses match their schema, status codes and
content types are documented. A failure prints schemathesis' report, with a
``curl`` line reproducing each failing request.

Not fuzzed (:data:`EXCLUDED`): operations that reboot or shut a machine down,
or install software (pip) — on a Raspberry Pi they would do exactly that.

A 5xx fails the run, except a 502 that the operation documents (it calls
another unit synchronously, e.g. ``POST /api/workers/setup`` with a host name
that does not resolve): that is the contract, not a fault of the server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reactorkit.core.testing import LocalCluster

pytestmark = pytest.mark.integration

EXCLUDED: dict[str, str] = {
    r"/system/reboot$": "reboots the unit(s)",
    r"/system/shutdown$": "shuts the unit(s) down",
    r"/system/update(/\{target\})?$": "installs a new version of the app (pip)",
    r"/system/update_next_version$": "installs a new version of the app on every unit (pip)",
    r"/system/update_from_archive$": "installs a new version of the app on every unit (pip)",
    r"/plugins/(install|uninstall|install-from-leader-usb)$": "installs or removes Python packages (pip)",
}
MAX_EXAMPLES = 4
RUN_TIMEOUT_S = 900  # per document; a run normally takes 30–110 s, several times that on a slow, loaded machine
SEED = 20260131


class FuzzCluster(LocalCluster):
    """A leader and one worker whose ``?wait=`` is capped at 1 s (fuzzed waits stay short)."""

    def config_text(self) -> str:
        return super().config_text() + "\n[ui]\nmax_wait_seconds = 1\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    with FuzzCluster(tmp_path_factory.mktemp("fuzz"), ["worker1"], speedup=50) as cluster:
        cluster.add_workers(experiment="fuzz_exp")
        yield cluster


def excluded_paths(paths: list[str]) -> dict[str, str]:
    """``{path: reason}`` of the document's paths that are not fuzzed."""
    return {p: reason for p in paths for pattern, reason in EXCLUDED.items() if re.search(pattern, p)}


def config_file(document: dict, folder: Path) -> Path:
    """A schemathesis config accepting the 502 of the operations that document it."""
    lines = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if "502" in operation["responses"]:
                lines += ["[[operations]]", f"include-path = {json.dumps(path)}",
                          f"include-method = {json.dumps(method.upper())}",
                          'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]', ""]
    path = folder / "schemathesis.toml"
    path.write_text("\n".join(lines))
    return path


def run_schemathesis(url: str, root: str, folder: Path) -> tuple[int, str, dict]:
    document = httpx.get(f"{url}{root}/openapi.json", timeout=30).json()
    excluded = excluded_paths(list(document["paths"]))
    regex = "^(" + "|".join(re.escape(p) for p in sorted(excluded)) + ")$" if excluded else None
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file(document, folder)), "run",
               f"{url}{root}/openapi.json", "--url", url,
               "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                           "content_type_conformance",
               "--phases", "examples,coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
               "--workers", "1", "--request-timeout", "30", "--no-color", "--suppress-health-check", "all"]
    if regex:
        command += ["--exclude-path-regex", regex]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=folder)
        output = done.stdout + done.stderr
        code = done.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code = -1
        output += f"\n(schemathesis did not finish within {RUN_TIMEOUT_S} s)"
    operations = sum(len(m) for m in document["paths"].values())
    excluded_ops = sum(len(document["paths"][p]) for p in excluded)
    return code, output, {"operations": operations, "excluded": excluded, "excluded_operations": excluded_ops}


def report_section(output: str) -> str:
    """The failures/errors part of schemathesis' report (with the reproducing requests)."""
    start = min((i for i in (output.find("= FAILURES ="), output.find("= ERRORS =")) if i >= 0), default=-1)
    return output[max(0, start - 100):] if start >= 0 else output[-6000:]


@pytest.mark.parametrize("root", ["/unit_api", "/api"])
def test_every_operation_survives_fuzzing_and_matches_its_schema(cluster, root, tmp_path):
    code, output, info = run_schemathesis(cluster.leader.url, root, tmp_path)
    print(f"{root}: {info['operations']} operations, {info['excluded_operations']} not fuzzed:")
    for path, reason in sorted(info["excluded"].items()):
        print(f"  {path}: {reason}")
    print(output[-1500:])
    assert code == 0, f"schemathesis found problems in {root} (reproduce with the curl lines):\n{report_section(output)}"
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    assert selected and tested, output[-3000:]
    total = int(selected.group(2))
    # schemathesis may leave out the operation serving the very document it loaded (fetched above anyway, and
    # checked by test_openapi_document.py)
    assert total in (info["operations"], info["operations"] - 1)
    assert int(tested.group(1)) == int(selected.group(1)) == total - info["excluded_operations"]
