"""The ``pio`` console script.

``pio run <job> …`` is handed to the unit's job launcher when one runs
(:mod:`reactorkit.core.launcher`): this process then imports only the launch
client, forwards signals to the job and leaves with its exit code. ``pio
--help`` and ``pio run --help`` print their text from a cache
(``$DOT_PIOREACTOR/storage/cli_help.json``, keyed by the CLI index's
fingerprint and the terminal width) without importing click, and so does a
``pio run <job> …`` no launcher takes, when :mod:`reactorkit.core.cli.run` can
read its command line (the job then does not carry click). Everything else,
and what the cache does not hold yet, goes to :mod:`reactorkit.core.cli.main`.
"""

from __future__ import annotations

import os
import sys

HELP_FLAGS = ("--help", "-h")
HELP_CACHE = "cli_help.json"


def _launchable(args: list[str]) -> bool:
    return (len(args) >= 2 and args[0] == "run" and not args[1].startswith("-")
            and "--help" not in args and "-h" not in args)


def _help_key(args: list[str]) -> str | None:
    """``"pio"`` or ``"pio run"`` for a bare help request, else None."""
    if len(args) == 1 and args[0] in HELP_FLAGS:
        return "pio"
    if len(args) == 2 and args[0] == "run" and args[1] in HELP_FLAGS:
        return "pio run"
    return None


def help_width() -> int:
    """The help's width as click computes it (terminal columns, at most 100, less 2; at least 50)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 100) - 2, 50)


def _help_cache_path() -> str:
    root = os.environ.get("DOT_PIOREACTOR") or os.path.join(os.path.expanduser("~"), ".pioreactor")
    return os.path.join(root, "storage", HELP_CACHE)


def _cache_key(name: str) -> str:
    from reactorkit.core.cli.index import fingerprint, read_watched

    return f"{name}|{help_width()}|{fingerprint(read_watched())}"


def cached_help(name: str) -> str | None:
    """The cached help text of ``name`` for this terminal and these plugins, if any."""
    import json

    try:
        with open(_help_cache_path()) as f:
            cache = json.load(f)
        return cache.get(_cache_key(name))
    except (OSError, ValueError, AttributeError):
        return None


def store_help(name: str, text: str) -> None:
    """Keep ``text`` as the help of ``name`` (entries of other fingerprints are dropped)."""
    import json

    key = _cache_key(name)
    fingerprint = key.split("|", 2)[2]
    path = _help_cache_path()
    try:
        with open(path) as f:
            cache = {k: v for k, v in json.load(f).items() if k.endswith(fingerprint)}
    except (OSError, ValueError, AttributeError):
        cache = {}
    cache[key] = text
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, path)
    except OSError:  # read-only state folder: no cache
        pass


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if _launchable(args):
        from reactorkit.core.launch_client import exit_like, run_attached

        code = run_attached(["pio", *args])
        if code is not None:
            exit_like(code)
        from reactorkit.core.cli.run import run_without_click

        run_without_click(args)  # returns when click must read the command line
    name = _help_key(args)
    if name is not None:
        text = cached_help(name)
        if text is None:
            from reactorkit.core.cli.main import render_help

            text = render_help(args[:-1], help_width())
            store_help(name, text)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    from reactorkit.core.cli.main import main as full_main

    full_main()


if __name__ == "__main__":
    main()
