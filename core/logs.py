"""Job logging: to stderr, to the unit's log file and to the MQTT log topic.

Log records of a job are published on
``pioreactor/{unit}/{experiment}/logs/{source}/{level}`` (level lowercase) with
the payload ``{message, level (UPPER), task, timestamp, source}`` (QoS 0, not
retained), and appended to ``[logging] log_file`` under ``$DOT_PIOREACTOR``.
NOTICE (25) sits between INFO and WARNING, as in the Pioreactor software.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from reactorkit.core.config import Config, get_config

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": NOTICE, "warning": logging.WARNING, "error": logging.ERROR}


class MQTTLogHandler(logging.Handler):
    """Publish each record on the contract's log topic.

    Args:
        client: A connected paho client (publishing is non-blocking).
        topic_base: ``{root}/{unit}/{experiment}/logs/{source}``.
        task: The job name reported in ``task``.
        source: ``app`` for built-ins, else the plugin's name.
    """

    def __init__(self, client: Any, topic_base: str, task: str, source: str, clock: Any) -> None:
        super().__init__()
        self.client = client
        self.topic_base = topic_base
        self.task = task
        self.source = source
        self.clock = clock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = logging.getLevelName(record.levelno)
            payload = {
                "message": self.format(record),
                "level": level,
                "task": self.task,
                "timestamp": self.clock.utc_iso(),
                "source": self.source,
            }
            self.client.publish(f"{self.topic_base}/{level.lower()}", json.dumps(payload), qos=0, retain=False)
        except Exception:  # logging must never crash a job
            self.handleError(record)


def create_logger(
    name: str,
    *,
    unit: str,
    experiment: str,
    mqtt_client: Any = None,
    source: str = "app",
    config: Config | None = None,
    clock: Any = None,
    console: bool = True,
) -> logging.Logger:
    """A logger for a job: stderr, the unit's log file and (when given a client) MQTT.

    ``console=False`` leaves stderr out: for a message the caller has already printed there (a refused
    ``pio run`` prints its one ``Error: …`` line, and logs it only for the log file and the UI).

    Returns:
        ``logging.Logger`` named ``reactorkit.{name}``; calling this twice for the
        same name replaces the handlers.
    """
    config = config or get_config()
    logger = logging.getLogger(f"reactorkit.{name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter(f"%(asctime)s [{name}] %(levelname)-7s %(message)s")
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        stream.setLevel(config.get("logging", "console_log_level", fallback="INFO").upper())
        logger.addHandler(stream)
    try:
        path = config.path("logging", "log_file")
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(f"%(asctime)s {unit} [{name}] %(levelname)s %(message)s"))
        file_handler.setLevel(logging.DEBUG)
        logger.addHandler(file_handler)
    except OSError as exc:
        logger.warning("cannot write the log file: %s", exc)
    if mqtt_client is not None:
        from reactorkit.core.clock import get_clock
        from reactorkit.core.mqtt import root_topic

        mqtt_handler = MQTTLogHandler(
            mqtt_client, f"{root_topic(config)}/{unit}/{experiment}/logs/{source}", name, source, clock or get_clock(config)
        )
        mqtt_handler.setLevel(config.get("logging", "ui_log_level", fallback="INFO").upper())
        mqtt_handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(mqtt_handler)
    return logger
