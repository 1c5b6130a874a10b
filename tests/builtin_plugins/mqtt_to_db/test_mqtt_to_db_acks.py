"""Deferred PUBACKs: installed on the gmqtt the project uses, sent only on the connection that received the message."""

import gmqtt

from reactorkit.builtin_plugins.mqtt_to_db import acks


class FakeConnection:
    def __init__(self):
        self.sent = []
        self.closing = False

    def send_package(self, data):
        self.sent.append(bytes(data))

    def is_closing(self):
        return self.closing


def test_the_deferred_acknowledgements_hook_into_the_installed_gmqtt():
    seen = []
    client = gmqtt.Client("rk-test", optimistic_acknowledgement=False)
    deferred = acks.DeferredAcks(client, lambda *args: seen.append(args) or acks.QUEUED)
    assert deferred.installed  # else the ingestion silently falls back to a task per message


def test_a_batch_is_acknowledged_in_one_write_on_the_live_connection_only():
    client = gmqtt.Client("rk-test", optimistic_acknowledgement=False)
    verdicts = iter([acks.QUEUED, acks.ACK_NOW, acks.QUEUED, acks.HOLD])
    tokens = []

    def intake(topic, payload, properties, token):
        tokens.append(token)
        return next(verdicts)

    deferred = acks.DeferredAcks(client, intake)
    handler = deferred.handler
    old, live = FakeConnection(), FakeConnection()
    handler.set_connection(old)
    handler._handle_qos_1_publish_packet(1, b"{}", "t", {})
    handler.set_connection(live)
    for mid in (2, 3, 4):
        handler._handle_qos_1_publish_packet(mid, b"{}", "t", {})
    assert live.sent == [acks.puback(2)]  # nothing to store: at once
    assert deferred.send([tokens[0], tokens[2]]) == 1  # mid 1 came on the old connection: the broker sends it again
    assert live.sent[-1] == acks.puback(3) and old.sent == []
    assert acks.puback(3) == b"\x40\x02\x00\x03"
