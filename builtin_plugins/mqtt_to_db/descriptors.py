"""Descriptors of the mqtt_to_db plugin: plain data, nothing heavy imported."""

from reactorkit.plugin import CliOption, DatasetDescriptor, JobDescriptor, RouteDescriptor, TopicMapping

MQTT_TO_DB = JobDescriptor(
    job_name="mqtt_to_db_streaming",
    display_name="MQTT to database",
    description="Stores the cluster's readings, events and logs published over MQTT in the leader's database.",
    display=False,
    is_long_running=True,
    cli_options=(
        CliOption(name="batch_size", type="integer", default=None,
                  help="Most messages written per transaction (default 1000)."),
        CliOption(name="flush_interval_s", type="float", default=None,
                  help="Longest wait, in wall seconds, before buffered messages are written (default 0.1)."),
    ),
    job_class="reactorkit.builtin_plugins.mqtt_to_db.job:MqttToDb",
)

LOG_LEVELS = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")


def parse_log(topic: str, payload: bytes):
    """``pioreactor/{unit}/{experiment}/logs/{source}/{level}`` → a ``logs`` row.

    Payload ``{message, level, task, timestamp, source}`` (domain facts §2.6);
    the level is stored uppercased; a missing ``source`` comes from the topic,
    a missing ``level`` from the last topic segment.

    Raises:
        ValueError: the payload is not a JSON object with a message and a timestamp.
    """
    import json

    from reactorkit.plugin import row_from_topic

    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("a log payload must be a JSON object")
    if "message" not in data or "timestamp" not in data:
        raise ValueError("a log payload needs message and timestamp")
    parts = topic.split("/")
    index = parts.index("logs")
    topic_source = parts[index + 1] if len(parts) > index + 1 else "app"
    topic_level = parts[index + 2] if len(parts) > index + 2 else "info"
    return row_from_topic(
        topic,
        timestamp=str(data["timestamp"]),
        message=str(data["message"]),
        source=str(data.get("source") or topic_source),
        level=str(data.get("level") or topic_level).upper(),
        task=None if data.get("task") is None else str(data["task"]),
    )


def _ledger():
    from . import ledger

    return ledger


STORAGE = (TopicMapping(topic="pioreactor/+/+/logs/#", table="logs", parse=parse_log),
           _ledger().SEQUENCES, _ledger().GAPS)

DATASETS = (
    DatasetDescriptor(
        dataset_name="logs",
        display_name="Pioreactor logs",
        description="The append-only collection of logs from all units; a subset is shown in the UI's event log.",
        table="logs",
        column_descriptions={"level": "DEBUG, INFO, NOTICE, WARNING or ERROR", "task": "The job that logged it"},
    ),
    _ledger().GAPS_DATASET,
)

ROUTES = (
    RouteDescriptor(path="/api/ingestion", resource="reactorkit.builtin_plugins.mqtt_to_db.api:Ingestion",
                    leader_only=True, schemas="reactorkit.builtin_plugins.mqtt_to_db.api:SCHEMAS"),
)
