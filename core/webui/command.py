"""``pio ui install|status``: the Pioreactor web UI build served by the leader."""

from __future__ import annotations

from pathlib import Path

import click

from reactorkit.core.webui.build import DEFAULT_UI_VERSION

CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.group("ui", context_settings=CONTEXT)
def ui() -> None:
    """The web UI the leader serves at / (the Pioreactor UI build, fetched from the package index)."""


@ui.command("install")
@click.option("--version", "version", default=DEFAULT_UI_VERSION, show_default=True,
              help="Release of the `pioreactor` package whose UI build to install.")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use this wheel file instead of downloading one.")
def install(version: str, wheel: Path | None) -> None:
    """Fetch the UI build into $DOT_PIOREACTOR/ui/<version>/ and make it the one the leader serves."""
    from reactorkit.core.webui.build import UiInstallError, install_ui

    try:
        install_ui(version, wheel=wheel, echo=click.echo)
    except UiInstallError as exc:
        hint = " Check the network or pip's index settings (PIP_INDEX_URL)." if exc.unreachable else ""
        raise click.ClickException(f"{exc}.{hint}") from None
    click.echo("The leader serves it at / (restart nothing: it is picked up on the next request).")


@ui.command("status")
def status() -> None:
    """Show which UI build the leader serves, and from where."""
    from reactorkit.core.config import get_config
    from reactorkit.core.webui.build import installed_record, static_dir

    config = get_config()
    path = static_dir(config)
    configured = (config.get("ui", "static_dir", fallback="") or "").strip()
    if path is None:
        where = f"[ui] static_dir = {configured} holds no index.html" if configured else "no build is installed"
        click.echo(f"No web UI: {where}. Install one with: pio ui install")
        return
    record = installed_record() or {}
    source = "[ui] static_dir" if configured else f"version {record.get('version', '?')}"
    click.echo(f"Web UI ({source}): {path}")
