#!/usr/bin/env bash
# The browser test of the web UI drives Debian's chromium with the `playwright` package (no browser download):
# install chromium with apt-get when it is missing (needs root or sudo). Safe to run again.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
echo "[browser] installing chromium (for the web UI browser test)" >&2
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
