#!/usr/bin/env bash
# Set up a fresh machine for reactorkit: virtualenv in .venv, the package with its test and demo
# extras, and the services (Redis, mosquitto). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.reactorkit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "[setup] installing reactorkit and its dependencies" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # the one warning setuptools gives every editable install of a mapped package layout is not ours to fix
  .venv/bin/python -W "ignore:Editable installation:UserWarning" -m pip install --quiet -e '.[test,demo]'
  touch "$stamp"
fi
# the source tree's bytecode, as a wheel's install writes it: an editable install compiles none, and with
# PYTHONDONTWRITEBYTECODE set every process (each `pio run <job>`) would compile what it imports from source
.venv/bin/python -m compileall -q core builtin_plugins api pkgroot > /dev/null
bash scripts/ensure_services.sh
