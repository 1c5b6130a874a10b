"""The ``pio`` console script.

``pio run <job> …`` is handed to the unit's job launcher when one runs
(:mod:`reactorkit.core.launcher`): this process then imports only the launch
client, forwards signals to the job and leaves with its exit code. Everything
else, and ``pio run`` without a launcher, goes to :mod:`reactorkit.core.cli.main`.
"""

from __future__ import annotations

import sys


def _launchable(args: list[str]) -> bool:
    return (len(args) >= 2 and args[0] == "run" and not args[1].startswith("-")
            and "--help" not in args and "-h" not in args)


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if _launchable(args):
        from reactorkit.core.launch_client import exit_like, run_attached

        code = run_attached(["pio", *args])
        if code is not None:
            exit_like(code)
    from reactorkit.core.cli.main import main as full_main

    full_main()


if __name__ == "__main__":
    main()
