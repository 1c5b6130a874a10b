"""``pio tokens create|list|revoke|push``: the API tokens of the cluster (run on the leader)."""

from __future__ import annotations

import json

import click

from reactorkit.core.auth.scopes import SCOPES


@click.group("tokens", context_settings={"help_option_names": ["-h", "--help"]})
def tokens() -> None:
    """API tokens: create, list, revoke (on the leader; the list is pushed to every worker)."""


def _push(quiet: bool = False) -> None:
    from reactorkit.core.auth.distribute import push_tokens
    from reactorkit.core.config import get_config

    for unit, result in push_tokens(get_config()).items():
        if result != "ok" or not quiet:
            click.echo(f"  pushed to {unit}: {result}", err=result != "ok")


@tokens.command("create")
@click.option("--name", required=True, help="Who or what holds it (alice, lab-dashboard …).")
@click.option("--scope", type=click.Choice(SCOPES), required=True,
              help="read: GETs; control: jobs, pumps, experiments, profiles, calibrations; admin: everything.")
@click.option("--expires", default=None, help="A duration (90m, 12h, 30d, 2w) or an ISO date; default never.")
@click.option("--no-push", is_flag=True, help="Do not send the updated list to the workers now.")
def create(name: str, scope: str, expires: str | None, no_push: bool) -> None:
    """Create a token and print it (it is shown once; only its hash is stored)."""
    from reactorkit.core.auth.tokens import TokenError, TokenStore

    try:
        token, record = TokenStore().create(name, scope, expires=expires)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)
    click.echo(f"# token {record.id} '{record.name}', scope {record.scope}, expires {record.expires_at or 'never'}; "
               "use it as: Authorization: Bearer <token>", err=True)
    if not no_push:
        _push(quiet=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def list_(as_json: bool) -> None:
    """Every token (id, name, scope, created, expires, revoked); never their secrets."""
    from reactorkit.core.auth.tokens import TokenStore

    records = TokenStore().list()
    if as_json:
        for record in records:
            click.echo(json.dumps(record.public()))
        return
    click.echo(f"{'id':<9} {'name':<20} {'scope':<8} {'created':<21} {'expires':<21} status")
    for r in records:
        status = "revoked" if r.revoked_at else ("active" if r.active() else "expired")
        click.echo(f"{r.id:<9} {r.name:<20} {r.scope:<8} {r.created_at:<21} {r.expires_at or 'never':<21} {status}")


@tokens.command("revoke")
@click.argument("ref")
@click.option("--no-push", is_flag=True, help="Do not send the updated list to the workers now.")
def revoke(ref: str, no_push: bool) -> None:
    """Revoke the token with id or name REF."""
    from reactorkit.core.auth.tokens import TokenError, TokenStore

    try:
        record = TokenStore().revoke(ref)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {record.id} '{record.name}' ({record.scope})")
    if not no_push:
        _push(quiet=True)


@tokens.command("push")
def push() -> None:
    """Send the token list to every worker again (e.g. to one that was off when a token was revoked)."""
    _push()
