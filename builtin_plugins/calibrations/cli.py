"""``pio calibrations …``: list, display, set-active, delete, protocols and run (interactive).

``run`` drives the same step machines as the HTTP sessions, in the terminal:
each step's title and body are printed, its fields prompted for (with their
defaults), invalid values re-asked, and hardware actions run in this process.
Ctrl-C aborts the session.
"""

from __future__ import annotations

import json
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
def calibrations() -> None:
    """Calibrations of this unit: curves mapping raw signals (volts, seconds, duty cycle) to physical values."""


REGISTRY_KEY = "reactorkit.registry"


def registry() -> Any:
    """The plugin registry of the command being run: ``ctx.meta["reactorkit.registry"]`` (click's ``meta`` is
    shared by every context of one command line) when the caller put one there, else the installed plugins',
    built once for the command line and kept there."""
    meta = click.get_current_context().meta
    if meta.get(REGISTRY_KEY) is None:
        from reactorkit.plugin import Registry

        meta[REGISTRY_KEY] = Registry.installed()
    return meta[REGISTRY_KEY]


def _store() -> Any:
    from reactorkit.plugin import calibration_store

    return calibration_store


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc))


@calibrations.command("list")
@click.option("--device", help="Only this device, e.g. od90, media_pump, stirring.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(device: str | None, as_json: bool) -> None:
    """List stored calibrations (an asterisk marks the active one)."""
    store = _store()
    try:
        found = {device: store.list_calibrations(device)} if device else store.list_calibrations()
    except store.InvalidCalibration as exc:
        _fail(exc)
    active = store.active_calibrations()
    if as_json:
        click.echo(json.dumps({d: [dict(r, is_active=active.get(d) == r.get("calibration_name")) for r in rs]
                               for d, rs in found.items()}, indent=2, default=str))
        return
    if not any(found.values()):
        click.echo("No calibrations.")
        return
    click.echo(f"{'device':<16} {'calibration_name':<40} {'type':<24} {'created_at':<28} active")
    for dev, records in sorted(found.items()):
        for r in records:
            mark = "*" if active.get(dev) == r.get("calibration_name") else ""
            click.echo(f"{dev:<16} {str(r.get('calibration_name')):<40} {str(r.get('calibration_type')):<24} "
                       f"{str(r.get('created_at')):<28} {mark}")


@calibrations.command("display")
@click.option("--device", required=True, help="Device, e.g. od90.")
@click.option("--name", "name", required=True, help="Calibration name.")
def display(device: str, name: str) -> None:
    """Print a calibration's YAML and its curve at the recorded points."""
    import yaml

    from reactorkit.plugin import evaluate_curve as evaluate

    store = _store()
    try:
        record = store.load_calibration(device, name)
    except (store.CalibrationNotFound, store.InvalidCalibration) as exc:
        _fail(exc)
    click.echo(yaml.safe_dump(record, sort_keys=False).rstrip())
    recorded = record.get("recorded_data") or {}
    xs, ys = recorded.get("x") or [], recorded.get("y") or []
    if xs:
        click.echo(f"\n{record.get('x', 'x'):>14}  {record.get('y', 'y'):>14}  {'curve':>14}")
        for x, y in sorted(zip(xs, ys)):
            click.echo(f"{x:>14.6g}  {y:>14.6g}  {evaluate(record['curve_data_'], x):>14.6g}")


@calibrations.command("set-active")
@click.option("--device", required=True)
@click.option("--name", "name", required=True)
def set_active(device: str, name: str) -> None:
    """Make a calibration the active one of its device."""
    store = _store()
    try:
        store.set_active(device, name)
    except (store.CalibrationNotFound, store.InvalidCalibration) as exc:
        _fail(exc)
    click.echo(f"{name} is now the active calibration of {device}.")


@calibrations.command("delete")
@click.option("--device", required=True)
@click.option("--name", "name", required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(device: str, name: str, yes: bool) -> None:
    """Delete a calibration (and its active pointer)."""
    store = _store()
    if not yes:
        click.confirm(f"Delete calibration {name} of {device}?", abort=True)
    try:
        store.delete_calibration(device, name)
    except (store.CalibrationNotFound, store.InvalidCalibration) as exc:
        _fail(exc)
    click.echo(f"Deleted {name} of {device}.")


@calibrations.command("protocols")
def protocols_command() -> None:
    """List the calibration protocols this unit offers."""
    from reactorkit.builtin_plugins.calibrations.protocols import protocol_dicts

    for p in protocol_dicts(registry()):
        click.echo(f"{p['target_device']:<16} {p['protocol_name']:<22} {p['title']}")


# --------------------------------------------------------------------------- run


def _show(step: dict[str, Any]) -> None:
    click.echo()
    click.secho(step["title"], bold=True)
    if step.get("body"):
        click.echo(step["body"])
    table = (step.get("metadata") or {}).get("table")
    if table and table.get("rows"):
        click.echo("  " + " | ".join(map(str, table["columns"])))
        for row in table["rows"]:
            click.echo("  " + " | ".join(map(str, row)))


def _prompt_inputs(step: dict[str, Any]) -> dict[str, Any]:
    actions = (step.get("metadata") or {}).get("actions") or []
    inputs: dict[str, Any] = {}
    if not step["fields"]:
        if not click.confirm("Continue?", default=True):
            raise click.Abort()
        return inputs
    for i, f in enumerate(step["fields"]):
        label = f["label"]
        if f["field_type"] == "choice":
            label += f" ({'/'.join(map(str, f['options'] or []))})"
        if i == 0 and actions:
            label += " [or: " + ", ".join(a["label"] for a in actions) + "]"
        default = f["default"]
        if isinstance(default, list):
            default = ",".join(map(str, default))
        raw = click.prompt(label, default=default if default is not None else None, show_default=default is not None)
        for action in actions:
            if str(raw).strip().lower() in (action["label"].lower(), *map(str, action["inputs"].values())):
                return dict(action["inputs"])
        inputs[f["name"]] = raw
    return inputs


@calibrations.command("run")
@click.option("--device", required=True, help="Device to calibrate, e.g. media_pump, od90, stirring, od_fused.")
@click.option("--protocol-name", help="Protocol (default: the device's first by priority).")
def run(device: str, protocol_name: str | None) -> None:
    """Run a calibration protocol interactively in this terminal."""
    from reactorkit.builtin_plugins.calibrations.actions import ActionRunner
    from reactorkit.plugin import CalibrationError
    from reactorkit.builtin_plugins.calibrations.protocols import make_engine, protocol_dicts

    plugins = registry()
    available = [p for p in protocol_dicts(plugins) if p["target_device"] == device]
    if not available:
        raise click.ClickException(f"no calibration protocol for device {device!r} on this unit")
    if protocol_name is None:
        protocol_name = available[0]["protocol_name"]
    engine = make_engine(plugins, runner=ActionRunner(mode="inline"))
    try:
        session, step = engine.start(device, protocol_name)
    except CalibrationError as exc:
        raise click.ClickException(exc.error) from None
    session_id = session["session_id"]
    try:
        while session["status"] == "in_progress":
            _show(step)
            inputs = _prompt_inputs(step)
            try:
                session, step = engine.advance(session_id, inputs)
            except CalibrationError as exc:
                click.secho(f"{exc.error}" + (f" {exc.remediation}" if exc.remediation else ""), fg="red")
                session, step = engine.get(session_id)
    except (click.Abort, KeyboardInterrupt):
        engine.abort(session_id)
        click.echo("\nCalibration aborted.")
        raise SystemExit(1) from None
    _show(step)
    result = (step.get("metadata") or {}).get("result") or {}
    click.echo(json.dumps(result, indent=2, default=str))
