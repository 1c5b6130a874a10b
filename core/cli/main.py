"""``pio``: the command line of a unit.

Start-up is kept light: ``pio --help`` imports click and nothing else of
weight; ``pio run --help`` additionally loads the plugin entry points (whose
``__init__`` modules hold only descriptors). Job modules, falcon, paho, scipy
and rq are imported only by the command that needs them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _registry() -> Any:
    from reactorkit.core.plugins import Registry

    return Registry.installed()


def _index() -> dict[str, Any]:
    from reactorkit.core.cli.index import get_index

    return get_index()


# the framework's own commands whose modules are imported only when invoked: name -> (import path, help);
# the applications (pio serve, pio cluster, pio demo …) are registered by built-in plugins (register_cli_commands)
LAZY_COMMANDS = {
    "ui": ("reactorkit.core.webui.command:ui", "The web UI the leader serves: install, status."),
    "tokens": ("reactorkit.core.auth.command:tokens", "API tokens: create, list, revoke, push."),
}


class PluginCommands(click.Group):
    """A group that adds lazily imported built-in commands and the ``pio`` subcommands plugins
    register (both loaded only when invoked)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        own = sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))
        try:
            extra = [name for name in _index()["cli_commands"] if name not in own]
        except Exception:  # plugin trouble must not break the CLI
            extra = []
        return own + sorted(extra)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        from reactorkit.core.imports import resolve

        if name in LAZY_COMMANDS:
            return resolve(LAZY_COMMANDS[name][0])
        entry = _index()["cli_commands"].get(name)
        if entry is None:
            return None
        if entry["command"] is None:  # not importable by path: ask the plugins
            return resolve(_registry().cli_commands[name].command)
        return resolve(entry["command"])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The framework's and the built-in plugins' commands, then third-party plugins' commands, from the
        index (their modules are not imported)."""
        # the whole first sentence (click wraps it), not one cut at 60 characters with "..."
        rows = [(name, cmd.get_short_help_str(200)) for name, cmd in self.commands.items() if not cmd.hidden]
        rows += [(name, text) for name, (_, text) in LAZY_COMMANDS.items()]
        try:
            extra = _index()["cli_commands"]
        except Exception:
            extra = {}
        added = [(name, entry) for name, entry in sorted(extra.items())
                 if name not in self.commands and name not in LAZY_COMMANDS]
        rows += [(name, entry["help"]) for name, entry in added if entry.get("source") == "app"]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))
        plugin_rows = [(name, entry["help"]) for name, entry in added if entry.get("source") != "app"]
        if plugin_rows:
            with formatter.section("Plugin commands"):
                formatter.write_dl(plugin_rows)


@click.group(cls=PluginCommands, context_settings=CONTEXT)
def pio() -> None:
    """reactorkit: control a bioreactor unit (jobs, plugins, API server, task worker).

    Run a job with `pio run <job>`; list what runs with `pio jobs list`.
    The unit's state lives in $DOT_PIOREACTOR (default ~/.pioreactor).
    """


# ---------------------------------------------------------------------- run
_CLICK_TYPES = {"string": str, "float": float, "integer": int, "boolean": bool}


class JobCommands(click.Group):
    """``pio run <job>``: one subcommand per registered job, built from its descriptor."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_index()["jobs"])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = _index()["jobs"].get(name)
        return None if entry is None else _job_command(SimpleNamespace(**entry))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        jobs = _index()["jobs"]
        rows = [(name, jobs[name]["display_name"]) for name in sorted(jobs)]
        if rows:
            with formatter.section("Jobs and actions"):
                formatter.write_dl(rows)


def _job_command(descriptor: Any) -> click.Command:
    """A click command from a job's index entry (``job_name``, ``cli_options`` as dicts, …)."""
    params: list[click.Parameter] = []
    for option in descriptor.cli_options:
        flag = "--" + option["name"].replace("_", "-")
        if option["type"] == "flag":
            params.append(click.Option([flag], is_flag=True, default=False, help=option["help"]))
            continue
        kind: Any = click.Choice(option["choices"]) if option["choices"] else _CLICK_TYPES[option["type"]]
        low, high = option.get("min"), option.get("max")
        if option["type"] in ("float", "integer") and (low is not None or high is not None):
            # the bounds the setting declares (CliOption inherits them): click refuses a value outside in one line
            kind = click.FloatRange(low, high) if option["type"] == "float" else click.IntRange(low, high)
        params.append(
            click.Option([flag], type=kind, default=option["default"], required=option["required"],
                         help=option["help"], show_default=option["default"] is not None)
        )
    for name in getattr(descriptor, "cli_arguments", None) or ():
        params.append(click.Argument([name], required=True))
    params.append(
        click.Option(["--config-override"], type=(str, str, str), multiple=True, metavar="SECTION KEY VALUE",
                     help="Override a config value for this run only.")
    )
    extra = bool(getattr(descriptor, "accepts_extra_options", False))

    def callback(config_override: tuple[tuple[str, str, str], ...], **kwargs: Any) -> None:
        ctx = click.get_current_context()
        if extra:
            kwargs.update(_parse_extra(ctx.args))
        code = run_job(descriptor, {k: v for k, v in kwargs.items() if v is not None}, config_override)
        _RAN_JOB.append(descriptor.job_name)
        ctx.exit(code or 0)

    return click.Command(
        descriptor.job_name,
        params=params,
        callback=callback,
        help=(descriptor.description or descriptor.display_name),
        short_help=descriptor.display_name,
        context_settings={**CONTEXT, **({"ignore_unknown_options": True, "allow_extra_args": True} if extra else {})},
    )


def _parse_extra(args: list[str]) -> dict[str, str]:
    """``--key value`` pairs after the known options, as strings (automation parameters); a stray argument is a
    :class:`click.UsageError` (:func:`reactorkit.core.cli.run.parse_extra` reads them)."""
    from reactorkit.core.cli.run import parse_extra

    try:
        return parse_extra(args)
    except ValueError as exc:
        raise click.UsageError(f"unexpected argument {str(exc)!r}; give options as --name value") from None


from reactorkit.core.cli.run import run_job  # noqa: E402 (shared with the path without click)


pio.add_command(JobCommands("run", help="Run a job or action on this unit (see the list below).",
                            context_settings=CONTEXT))


# --------------------------------------------------------------------- kill
@pio.command(context_settings=CONTEXT)
@click.option("--job-name", help="Stop jobs with this name (pio run's JOB_NAME).")
@click.option("--experiment", help="Stop jobs of this experiment.")
@click.option("--job-id", type=int, help="Stop the job with this registry id.")
@click.option("--job-source", help="Stop jobs started by this source, e.g. user.")
@click.option("--all-jobs", is_flag=True, help="Stop every job except long-running ones (e.g. the leader's ingestion).")
def kill(job_name: str | None, experiment: str | None, job_id: int | None, job_source: str | None, all_jobs: bool) -> None:
    """Stop running jobs cleanly (SIGINT); give at least one filter or --all-jobs."""
    from reactorkit.core.jobs_control import stop_jobs

    if not any((job_name, experiment, job_id, job_source, all_jobs)):
        raise click.UsageError("give --job-name, --experiment, --job-id, --job-source or --all-jobs")
    stopped = stop_jobs(job_name=job_name, experiment=experiment, job_id=job_id, job_source=job_source, all_jobs=all_jobs)
    click.echo(f"Stopped {len(stopped)} job(s)" + (": " + ", ".join(r.job_name for r in stopped) if stopped else "."))


# --------------------------------------------------------------------- jobs
@pio.group(context_settings=CONTEXT)
def jobs() -> None:
    """Inspect the jobs running on this unit."""


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def jobs_list(as_json: bool) -> None:
    """List running jobs (stale rows of dead processes are removed first)."""
    import json

    from reactorkit.core.job_registry import JobRegistry

    registry = JobRegistry()
    rows = registry.running()
    if as_json:
        click.echo(json.dumps([dict(r.to_dict(), settings=registry.settings(r.job_id)) for r in rows], indent=2))
        return
    if not rows:
        click.echo("No jobs running.")
        return
    header = f"{'job_id':>6}  {'job_name':<26} {'experiment':<20} {'source':<14} {'pid':>7}  started_at"
    click.echo(header)
    for r in rows:
        click.echo(f"{r.job_id:>6}  {r.job_name:<26} {r.experiment:<20} {str(r.job_source):<14} {r.pid:>7}  {r.started_at}")


# ------------------------------------------------------------------ plugins
@pio.group(context_settings=CONTEXT)
def plugins() -> None:
    """List, install and uninstall plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_list(as_json: bool) -> None:
    """List plugins with version, source and any load error."""
    import json

    registry = _registry().check_contributions()
    infos = list(registry.plugins.values())
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    click.echo(f"{'name':<24} {'version':<10} {'source':<22} status")
    for info in infos:
        status = "ok" if not info.errors else "FAILED: " + "; ".join(info.errors)
        click.echo(f"{info.public_name:<24} {info.version:<10} {info.source:<22} {status}")


def _plugin_change(action: Any, *args: Any) -> dict[str, Any]:
    """Run an install/uninstall; a TaskFailed becomes one ``Error: …`` line (exit 1), not a traceback."""
    from reactorkit.core.task_functions import TaskFailed

    try:
        return action(*args)
    except TaskFailed as exc:
        detail = f" ({exc.cause})" if exc.cause and exc.cause != exc.error else ""
        hint = f" {exc.remediation}" if exc.remediation else ""
        raise click.ClickException(f"{exc.error}{detail}{hint}") from None


@plugins.command("install")
@click.argument("name")
@click.option("--source", help="A wheel, sdist or folder to install from (default: NAME from the package index).")
def plugins_install(name: str, source: str | None) -> None:
    """Install a plugin package (pip) and merge its default config sections into config.ini."""
    from reactorkit.core.plugin_packages import install_package

    result = _plugin_change(install_package, name, source)
    for entry in result["plugins"]:
        click.echo(f"installed {entry['name']} {entry['version']}")
    for key in result["config_added"]:
        click.echo(f"config.ini: added {key}")
    for error in result["load_errors"]:
        click.echo(f"warning: {error}", err=True)
    _echo_reloads()


@plugins.command("uninstall")
@click.argument("name")
def plugins_uninstall(name: str) -> None:
    """Uninstall a plugin: a file in $DOT_PIOREACTOR/plugins/, else the pip package."""
    from reactorkit.core.plugin_packages import uninstall_package

    result = _plugin_change(uninstall_package, name)
    click.echo(f"uninstalled {result['uninstalled']} ({result['source']})")
    _echo_reloads()


def _echo_reloads() -> None:
    """Tell the unit's running processes (:func:`reactorkit.core.reloads.after_plugin_change`) and say which were."""
    from reactorkit.core.reloads import after_plugin_change

    done = after_plugin_change()
    click.echo("pio serve: " + ("reloading its workers (SIGHUP)" if done["web_server_reloaded"] else "not running"))
    click.echo("running jobs: " + ("told to load the plugins anew" if done["jobs_told"]
                                   else "not told (the MQTT broker could not be reached)"))


# ------------------------------------------------------------------ version
@pio.command(context_settings=CONTEXT)
def version() -> None:
    """Print the reactorkit version."""
    from reactorkit import __version__

    click.echo(__version__)


# ------------------------------------------------------------------- worker
@pio.command(context_settings=CONTEXT)
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
def worker(burst: bool) -> None:
    """Run the rq task worker of this unit (queue named after the unit)."""
    from reactorkit.core.tasks import run_worker

    run_worker(burst=burst)


# ----------------------------------------------------------------- launcher
@pio.command(context_settings=CONTEXT)
def launcher() -> None:
    """Run the unit's job launcher (forks `pio run` jobs with the framework imported; `pio worker` starts one)."""
    from reactorkit.core.launcher import main as launcher_main

    launcher_main()


def render_help(path: list[str], width: int) -> str:
    """The help text of ``pio`` (``path == []``) or ``pio run`` (``["run"]``) at ``width`` columns."""
    ctx = click.Context(pio, info_name="pio", terminal_width=width, max_content_width=CONTEXT["max_content_width"],
                        help_option_names=CONTEXT["help_option_names"])
    if not path:
        return pio.get_help(ctx)
    command = pio.get_command(ctx, path[0])
    sub = click.Context(command, info_name=path[0], parent=ctx, terminal_width=width,
                        max_content_width=CONTEXT["max_content_width"], help_option_names=CONTEXT["help_option_names"])
    return command.get_help(sub)


def main() -> None:
    """Console-script entry point.

    After a job has run (``pio run <job>``), the process leaves as a job forked by the launcher does:
    its output flushed and its log handlers closed, without the interpreter's teardown (which frees
    every object of every imported module: tens of milliseconds of CPU after the job has stopped).
    """
    try:
        pio(prog_name="pio")
    except SystemExit as exc:
        if not _RAN_JOB:
            raise
        _leave(exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1)


_RAN_JOB: list[str] = []  # the job this process ran, once it has returned


def _leave(code: int) -> None:
    from reactorkit.core.cli.run import leave

    leave(code)


if __name__ == "__main__":
    main()
