"""A minimal MQTT 5 publisher for load generation (QoS 1, user properties, the broker's Receive Maximum).

Benchmarks need publishers that cost far less than what they measure: paho
spends ~100 µs of Python per QoS 1 message with properties; this one
pre-encodes what does not change and spends a few µs. It speaks just enough
MQTT 5 (CONNECT, PUBLISH QoS 1, PUBACK, DISCONNECT) for that; not for production use.
"""

from __future__ import annotations

import socket
import struct
import threading


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


class WirePublisher:
    """Connect to ``host:port`` as ``client_id`` and publish QoS 1 messages; counts the broker's PUBACKs.

    Attributes:
        acked: PUBACKs received so far.
        receive_maximum: The broker's in-flight window (from its CONNACK).
    """

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00" + _string(client_id)
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        kind, payload = self._read_packet()
        if kind != 2 or payload[1] != 0:
            raise ConnectionError(f"broker refused the connection: {payload!r}")
        self.receive_maximum = 65535
        props = payload[2:]
        i, n = self._read_varint(props, 0)
        end = i + n
        while i < end:
            pid = props[i]
            if pid == 0x21:
                self.receive_maximum = struct.unpack("!H", props[i + 1:i + 3])[0]
                i += 3
            elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17, 0x19):
                i += 2
            elif pid in (0x13,):
                i += 3
            elif pid in (0x11, 0x27):
                i += 5
            elif pid in (0x12, 0x1A, 0x1C, 0x1F, 0x15):
                i += 3 + struct.unpack("!H", props[i + 1:i + 3])[0]
            elif pid == 0x26:
                k = struct.unpack("!H", props[i + 1:i + 3])[0]
                v = struct.unpack("!H", props[i + 3 + k:i + 5 + k])[0]
                i += 5 + k + v
            else:
                break
        self.acked = 0
        self.sent = 0
        self._cond = threading.Condition()
        self._mid = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    @staticmethod
    def _read_varint(data: bytes, i: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return i, value

    def _read_packet(self) -> tuple[int, bytes]:
        first = self._recv_exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._recv_exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, self._recv_exact(length) if length else b""

    def _read_loop(self) -> None:
        buffer = b""
        try:
            while not self._closed:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                acks = 0
                i = 0
                while len(buffer) - i >= 2:
                    first = buffer[i]
                    j, length = i + 1, 0
                    shift = 0
                    while j < len(buffer):
                        byte = buffer[j]
                        j += 1
                        length |= (byte & 0x7F) << shift
                        shift += 7
                        if not byte & 0x80:
                            break
                    else:
                        break
                    if len(buffer) - j < length:
                        break
                    if first >> 4 == 4:
                        acks += 1
                    i = j + length
                buffer = buffer[i:]
                if acks:
                    with self._cond:
                        self.acked += acks
                        self._cond.notify_all()
        except OSError:
            return

    def publish_many(self, topic: str, payloads: list[bytes], properties: list[list[tuple[str, str]]]) -> None:
        """Send QoS 1 messages, staying within the broker's in-flight window."""
        topic_bytes = _string(topic)
        out = bytearray()
        for payload, props in zip(payloads, properties):
            with self._cond:
                while self.sent - self.acked >= self.receive_maximum:
                    if out:
                        self.sock.sendall(out)
                        out.clear()
                    self._cond.wait(1.0)
            self._mid = self._mid % 65535 + 1
            prop_bytes = b"".join(b"\x26" + _string(k) + _string(v) for k, v in props)
            body = topic_bytes + struct.pack("!H", self._mid) + _varint(len(prop_bytes)) + prop_bytes + payload
            out += b"\x32" + _varint(len(body)) + body
            self.sent += 1
        if out:
            self.sock.sendall(out)

    def wait_acked(self, timeout: float = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.acked >= self.sent, timeout)

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass
