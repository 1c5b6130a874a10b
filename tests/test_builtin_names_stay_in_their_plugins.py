"""The core and the HTTP app do not know the built-in plugins by name (a grep check over their code).

The names come from the built-in plugins' own declarations (every table, job and route they register),
not from a list kept here. A name counts where the code uses it: a string literal (SQL, topics, paths,
messages) or an identifier of ``core/`` or ``api/``; and a plain grep of every line (docstrings and
comments too) finds none either. The few contract-level names that must stay are in ``ALLOWED``, each with its reason; an
entry that no longer matches anything fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from reactorkit.core.plugins import Registry

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("core", "api")

ALLOWED: dict[tuple[str, str], str] = {
    ("audit_log", "core/audit.py"): "the audit log is the core's (written by every app for each state-changing "
                                    "request); the exports plugin only declares its table and dataset with the "
                                    "core's CREATE_SQL",
    ("audit_log", "api/app.py"): "the app keeps its audit log (core/audit.py) on its context",
    ("dosing_events", "core/descriptors.py"): "RESERVED_JOB_NAMES: topic segments at the job level of the MQTT "
                                              "contract that are not jobs, refused as job names",
    ("led_change_events", "core/descriptors.py"): "RESERVED_JOB_NAMES, as dosing_events",
    ("mqtt_to_db_streaming", "core/outbox.py"): "INGESTION_JOB: the outbox protocol between every unit and the "
                                                "leader acknowledges through the ingestion job's topics",
    ("ingestion_gaps", "core/fault_drills.py"): "the fault-drill harness audits the ingestion ledger from outside, "
                                                "as the outbox protocol defines it",
    ("ingestion_sequences", "core/fault_drills.py"): "as ingestion_gaps",
    ("monitor", "api/unit/leader.py"): "POST /api/workers/{u}/blink publishes on the fixed topic "
                                       "…/$experiment/monitor/flicker_led_response_okay of the MQTT contract "
                                       "(domain facts §2.6), whether or not a monitor runs",
    ("od_reading", "core/hardware/replay.py"): "the replay backend's file format: a CSV with the od_readings "
                                               "dataset's timestamp and od_reading columns",
    ("stirring", "core/config.py"): "the default config.ini's [PWM] channel functions (Pioreactor contract)",
    ("stirring", "core/hardware/vessel.py"): "the simulated vessel's PWM devices, the [PWM] channel functions",
    ("stirring", "core/calibration_store.py"): "CALIBRATION_TYPES: the contract's simple_stirring calibrations "
                                               "belong to the stirring device (domain facts §6)",
}


def builtin_names() -> tuple[set[str], set[str]]:
    """``(names, route templates)`` the built-in plugins declare: tables, jobs and routes."""
    registry = Registry.installed()
    builtin = [r for group in (registry.tables, registry.jobs, registry.routes) for r in group.values()
               if r.source == "app"]
    names = {r.table for r in builtin if hasattr(r, "table")} | {r.job_name for r in builtin if hasattr(r, "job_name")}
    routes = {re.sub(r"\{([^}:]+)(?::[^}]*)?\}", r"{\1}", r.path) for r in builtin if hasattr(r, "path")}
    return names, routes


def code_words(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, text)`` of every string literal that is not a docstring, and of every identifier."""
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.lineno, node.name))
        elif isinstance(node, ast.arg):
            out.append((node.lineno, node.arg))
    return out


def found() -> dict[tuple[str, str], list[str]]:
    """``{(name, file): ["file:line: text"]}`` of every built-in name in the layers' code."""
    names, routes = builtin_names()
    patterns = {name: re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])") for name in names}
    hits: dict[tuple[str, str], list[str]] = {}
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for line, text in code_words(ast.parse(path.read_text(), filename=relative)):
                matched = [n for n, p in patterns.items() if p.search(text)] + [r for r in routes if r in text]
                for name in matched:
                    hits.setdefault((name, relative), []).append(f"{relative}:{line}: {text[:80]!r}")
    return hits


@pytest.fixture(scope="module")
def hits() -> dict[tuple[str, str], list[str]]:
    return found()


def test_the_names_come_from_the_built_in_plugins_declarations():
    names, routes = builtin_names()
    assert {"od_readings", "growth_rates", "dosing_events", "temperature_readings"} <= names  # tables
    assert {"stirring", "od_reading", "temperature_automation", "dosing_automation", "add_media"} <= names  # jobs
    assert "/unit_api/calibrations/{device}" in routes and "/api/experiment_profiles" in routes


def test_core_and_api_code_name_no_built_in_table_job_or_route(hits):
    unexpected = [line for key, lines in sorted(hits.items()) if key not in ALLOWED for line in lines]
    assert not unexpected, "built-in names in core/ or api/ (move the code to the plugin that owns it, or take " \
                           "the name from the registry):\n" + "\n".join(unexpected)


def test_every_allowed_name_is_still_there(hits):
    stale = sorted(f"{name} in {file}" for name, file in ALLOWED if (name, file) not in hits)
    assert not stale, f"allow-list entries that match nothing any more (remove them): {stale}"


def test_the_check_finds_a_built_in_name_in_code_but_not_in_a_docstring(tmp_path):
    tree = ast.parse('"""Reads ``od_readings``."""\nx = 1  # od_readings\nSQL = "SELECT * FROM od_readings"\n')
    words = code_words(tree)
    assert [line for line, text in words if "od_readings" in text] == [3]


def test_their_docstrings_and_comments_take_no_built_in_as_example_either():
    """A grep of core/ and api/ (every line, prose included) finds a built-in name only where ALLOWED says why."""
    names, routes = builtin_names()
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                         + r")(?![A-Za-z0-9_])")
    unexpected = []
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for number, line in enumerate(path.read_text().splitlines(), 1):
                named = {m.group(1) for m in pattern.finditer(line)} | {r for r in routes if r in line}
                if any((name, relative) not in ALLOWED for name in named):
                    unexpected.append(f"{relative}:{number}: {line.strip()[:100]}")
    assert not unexpected, "built-in names in core/ or api/:\n" + "\n".join(unexpected)
