"""``pio run <job> …`` in this process, without click, when no launcher takes the job.

A job started in a fresh interpreter (no launcher on the unit, or ``REACTORKIT_LAUNCHER=0``) carries
every module it imported for as long as it runs: click and the rest of the command line are ~3 MB
of its RSS. The common command lines — the job's declared options as ``--name value``,
``--name=value`` or ``--flag``, its arguments, and (for a job that accepts them) further
``--key value`` pairs — are read here from the job's entry in the CLI index
(:mod:`reactorkit.core.cli.index`); anything else (``--config-override``, an unknown option, a
missing or malformed value, a value out of the option's bounds, a ``boolean`` option) is left to
click (:mod:`reactorkit.core.cli.main`), which runs the same job or says what is wrong, so both
read a command line the same way or this one does not read it at all.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, NoReturn

_CONVERT = {"string": str, "float": float, "integer": int}


def _convert(option: dict[str, Any], value: str) -> Any:
    """``value`` as ``option`` declares it (type, choices, bounds), or raise ValueError."""
    if option["choices"]:
        if value not in option["choices"]:
            raise ValueError(value)
        return value
    converted = _CONVERT[option["type"]](value)  # KeyError for "boolean": left to click
    low, high = option.get("min"), option.get("max")
    if option["type"] in ("float", "integer") and (
            (low is not None and converted < low) or (high is not None and converted > high)):
        raise ValueError(value)
    return converted


def parse_job_args(entry: dict[str, Any], args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments ``pio run <job> ARGS`` gives the job (as click's command for ``entry`` gives
    them: options not given are left out, flags not given are False), or None when click must read it.

    Args:
        entry: The job's entry in the CLI index (``cli_options`` as dicts, ``cli_arguments``,
            ``accepts_extra_options``).
        args: The command line after the job's name.
    """
    options = {"--" + o["name"].replace("_", "-"): o for o in entry.get("cli_options") or ()}
    arguments = list(entry.get("cli_arguments") or ())
    extra_allowed = bool(entry.get("accepts_extra_options"))
    if arguments and extra_allowed:
        return None
    kwargs: dict[str, Any] = {o["name"]: False for o in options.values() if o["type"] == "flag"}
    positional: list[str] = []
    extra: list[str] = []
    i = 0
    try:
        while i < len(args):
            arg = args[i]
            name, eq, inline = arg.partition("=")
            option = options.get(name) if arg.startswith("--") else None
            if option is None:
                if not arg.startswith("-") and not extra:
                    positional.append(arg)
                elif extra_allowed and arg.startswith("--") and name not in ("--config-override", "--"):
                    extra.append(arg)
                elif extra and not arg.startswith("-"):
                    extra.append(arg)
                else:
                    return None
                i += 1
                continue
            if option["type"] == "flag":
                if eq:
                    return None
                kwargs[option["name"]] = True
                i += 1
                continue
            if eq:
                value, i = inline, i + 1
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                value, i = args[i + 1], i + 2
            else:
                return None
            kwargs[option["name"]] = _convert(option, value)
    except (ValueError, KeyError, TypeError):
        return None
    if extra_allowed:
        extra, positional = positional + extra, []
        try:
            kwargs.update(parse_extra(extra))
        except ValueError:  # click reports the stray argument
            return None
    if len(positional) != len(arguments):
        return None
    kwargs.update(zip(arguments, positional))
    for option in options.values():
        if option["name"] in kwargs:
            continue
        if option["required"]:
            return None
        if option["default"] is not None:
            try:
                kwargs[option["name"]] = _convert(option, str(option["default"]))
            except (ValueError, KeyError, TypeError):
                return None
    return kwargs


def parse_extra(args: list[str]) -> dict[str, str]:
    """``--key value`` (or ``--key=value``) pairs after a job's known options, as strings (automation parameters);
    a ``--key`` with no value is ``""``.

    Raises:
        ValueError: A bare argument that follows no ``--key`` (the argument is the error's message).
    """
    out: dict[str, str] = {}
    key: str | None = None
    for arg in args:
        if arg.startswith("--"):
            if key is not None:
                out[key] = ""
            name, eq, value = arg[2:].partition("=")
            key = name.replace("-", "_")
            if eq:
                out[key], key = value, None
        elif key is not None:
            out[key], key = arg, None
        else:
            raise ValueError(arg)
    if key is not None:
        out[key] = ""
    return out


def run_job(descriptor: Any, kwargs: dict[str, Any], overrides: tuple[tuple[str, str, str], ...] = ()) -> int:
    """Run a job in this process until it disconnects; returns the exit code.

    The unit comes from ``$HOSTNAME`` (else the hostname), the experiment from
    ``$EXPERIMENT`` (else the unit's assignment, else ``$experiment``).
    """
    from reactorkit.core.config import get_experiment, get_unit_name, load_config, set_config
    from reactorkit.core.imports import resolve

    if getattr(descriptor, "needs_registry", False):
        from reactorkit.core.plugins import Registry

        descriptor = Registry.installed().jobs[descriptor.job_name]
    config = load_config(overrides)
    set_config(config)
    unit, experiment = get_unit_name(), get_experiment()
    if descriptor.runner is not None:
        result = resolve(descriptor.runner)(unit=unit, experiment=experiment, config=config, **kwargs)
        return int(result or 0)
    from reactorkit.core.start_errors import start_failure

    job_class = resolve(descriptor.job_class)
    try:
        job = job_class(unit=unit, experiment=experiment, config=config, source=descriptor.source, **kwargs)
    except Exception as exc:  # the job refused an option's value, or cannot start: one line, not a traceback
        code = start_failure(descriptor.job_name, exc, refusals=(ValueError,), refusal_exit=2,
                             refusal_hint=f". See `pio run {descriptor.job_name} --help` for its options.")
        if code is None:
            raise
        return code
    job.block_until_disconnected()
    return 0


def run_without_click(args: list[str]) -> None:
    """``pio run <job> …`` (``args`` from ``run``) in this process when :func:`parse_job_args` reads it: runs the
    job and leaves the process with its exit code (:func:`leave`). Returns (nothing run) when click must read
    the command line (or the job is not in the CLI index, or the index cannot be read)."""
    from reactorkit.core.cli.index import get_index

    try:
        entry = get_index()["jobs"].get(args[1])
    except Exception:  # (click reports it)
        return
    if entry is None:
        return
    kwargs = parse_job_args(entry, args[2:])
    if kwargs is None:
        return
    from reactorkit.core.deferred_imports import defer

    # imported at the top of modules every job imports, read by none before it is ready: inspect (and its ast,
    # dis, tokenize…) by dataclasses, for a class without a docstring; uuid (and platform) by paho and the
    # outbox, to make a new id; ssl and hashlib by paho, for a TLS connection (its exception classes are served from
    # _ssl) or a websocket's handshake; traceback (and its linecache, tokenize, textwrap) by logging, to format an
    # exception; base64 by paho, for a websocket's handshake (and by the automations, after ready); stringprep by
    # the idna codec (a str host's getaddrinfo), for a label that is not ASCII; platform by paho, whose one call at
    # its import (platform.system()) the stand-in answers from os.uname() (and by uuid, once imported). With asyncio
    # (the ingestion's connections), whose C module reads traceback.extract_stack at its import: linecache (and
    # tokenize) by traceback and asyncio's task repr, textwrap by traceback, locale by subprocess (for a child's
    # text encoding), read by none before ready (~1 ms of the ingestion's start)
    defer("inspect", "uuid", "ssl", "hashlib", "traceback", "base64", "stringprep", "platform", "locale", "linecache",
          "tokenize", "textwrap")
    try:
        code = run_job(SimpleNamespace(**entry), kwargs)
    except KeyboardInterrupt:  # as click's standalone mode reports it
        print("Aborted!", file=sys.stderr)
        code = 1
    leave(code)


def leave(code: int, close_logs: bool = True) -> NoReturn:
    """Leave after a job has run, as a job forked by the launcher does: the WAL of the unit's outbox checkpointed
    and truncated (:func:`reactorkit.core.outbox.truncate_wals_at_exit`), output flushed (and log handlers closed
    when ``close_logs``), without the interpreter's teardown (which frees every object of every imported module:
    tens of milliseconds of CPU after the job has stopped).

    Args:
        code: The process's exit status.
        close_logs: Close the logging handlers first (``logging.shutdown``); a child forked by the launcher
            leaves them, since the launcher's objects it inherited are not its own to finalise.
    """
    import logging
    import os

    outbox = sys.modules.get("reactorkit.core.outbox")
    if outbox is not None:  # (a process that never imported it has no outbox open)
        try:
            outbox.truncate_wals_at_exit()  # the outbox's WAL checkpointed and emptied (see there)
        except Exception:
            pass
    if close_logs:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)
