#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and mosquitto (127.0.0.1:1883) are installed and running.
# Installs them with apt-get when absent (needs root or sudo); starts them when not listening.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
ensure_package() {  # ensure_package <command> <debian package>
  if ! command -v "$1" >/dev/null 2>&1; then
    if [ "$apt_updated" = 0 ]; then
      echo "[services] apt-get update" >&2
      as_root apt-get update -qq
      apt_updated=1
    fi
    echo "[services] installing $2" >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$2" >/dev/null
  fi
}

wait_for() {  # wait_for <port> <name>
  for _ in $(seq 1 50); do listening "$1" && return 0; sleep 0.1; done
  echo "[services] $2 did not start on port $1" >&2
  return 1
}

if ! listening 6379; then
  ensure_package redis-server redis-server
  echo "[services] starting redis-server" >&2
  mkdir -p /tmp/reactorkit-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/reactorkit-redis --logfile /tmp/reactorkit-redis/redis.log
  wait_for 6379 redis-server
fi

if ! listening 1883; then
  ensure_package mosquitto mosquitto
  echo "[services] starting mosquitto" >&2
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d
  fi
  wait_for 1883 mosquitto
fi
echo "[services] redis and mosquitto are up" >&2
