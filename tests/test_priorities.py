"""RFC 9218 priorities: the server announces SETTINGS_NO_RFC7540_PRIORITIES=1 and, with a
client that announces it too, schedules DATA by the ``priority`` header and by
PRIORITY_UPDATE frames; other clients get RFC 7540 priorities.

The client (``h2``) paces the server: it opens its connection window 64 KiB at
a time, so both responses are still being sent when the urgent request
arrives, and every tick shows which stream the server chose to serve.
"""
from __future__ import annotations

import socket
import struct

import h2.config
import h2.connection
import h2.events
import h2.settings

from conftest import H2Connection
from nghttp2py import BaseRequestHandler

NO_RFC7540_PRIORITIES = 0x9
PRIORITY_UPDATE = 0x10
TICK = 65536
LARGE = bytes(8 << 20)
URGENT = bytes(1 << 20)


class SizedHandler(BaseRequestHandler):
    def on_headers(self):
        self.send_response(200, body=LARGE if self.path == b"/large" else URGENT)


class PacedClient(H2Connection):
    """An h2 client whose first SETTINGS may carry NO_RFC7540_PRIORITIES (it must not
    change later) and large stream windows; the connection window is the pace."""

    def __init__(self, port: int, rfc9218: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        initial = {h2.settings.SettingCodes.ENABLE_PUSH: 0,
                   h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 << 20}
        if rfc9218:
            initial[NO_RFC7540_PRIORITIES] = 1
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values=initial)
        self.conn.initiate_connection()
        self.flush()
        self.authority = f"127.0.0.1:{port}"
        self.order: list[tuple[int, int]] = []  # (stream id, DATA bytes) as received
        self.ended: list[int] = []
        self.settings: dict = {}

    def tick(self) -> None:
        """Allow 64 KiB more on the connection and read until it has arrived."""
        self.conn.increment_flow_control_window(TICK)
        self.flush()
        self.read(TICK)

    def read(self, wanted: int) -> None:
        self.sock.settimeout(5)
        while wanted > 0:
            data = self.sock.recv(1 << 20)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.order.append((event.stream_id, len(event.data)))
                    wanted -= event.flow_controlled_length
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.append(event.stream_id)
                elif isinstance(event, h2.events.RemoteSettingsChanged):
                    self.settings.update({int(k): v.new_value
                                          for k, v in event.changed_settings.items()})
            self.flush()

    def priority_update(self, stream_id: int, value: bytes) -> None:
        payload = struct.pack(">I", stream_id) + value
        self.sock.sendall(struct.pack(">I", len(payload))[1:]
                          + bytes((PRIORITY_UPDATE, 0)) + struct.pack(">I", 0) + payload)

    def race(self, large: int, urgent: int) -> tuple[int, int]:
        """Tick until the urgent stream ends: (bytes of the large stream meanwhile,
        bytes of the urgent one)."""
        start = len(self.order)
        for _ in range(200):
            if urgent in self.ended:
                break
            self.tick()
        assert urgent in self.ended, "the urgent stream did not finish"
        during = self.order[start:]
        return (sum(n for s, n in during if s == large),
                sum(n for s, n in during if s == urgent))


def start_large(client: PacedClient, headers=()) -> int:
    large = client.request("/large", headers=headers)
    client.read(65535)  # the initial connection window, all for the large stream
    for _ in range(3):
        client.tick()
    assert {s for s, _ in client.order} == {large}
    return large


def test_urgent_stream_overtakes_a_large_low_urgency_one(serve):
    server = serve(SizedHandler)
    client = PacedClient(server.port, rfc9218=True)
    try:
        large = start_large(client, [("priority", "u=7")])
        assert client.settings.get(NO_RFC7540_PRIORITIES) == 1
        urgent = client.request("/urgent", headers=[("priority", "u=0")])
        large_bytes, urgent_bytes = client.race(large, urgent)
        assert urgent_bytes == len(URGENT)
        assert large not in client.ended  # the urgent one, requested later, ended first
        assert large_bytes <= TICK, large_bytes  # (at most the tick already under way)
    finally:
        client.close()


def test_same_urgency_is_served_in_request_order(serve):
    """The control: without priorities (both u=3, not incremental) the earlier stream
    keeps the connection, so the test above measures the priority header."""
    server = serve(SizedHandler)
    client = PacedClient(server.port, rfc9218=True)
    try:
        large = start_large(client)
        urgent = client.request("/urgent")
        for _ in range(10):
            client.tick()
        assert {s for s, _ in client.order[-8:]} == {large}
        assert urgent not in client.ended
    finally:
        client.close()


def test_priority_update_frame_lowers_a_running_stream(serve):
    """PRIORITY_UPDATE (RFC 9218 7.1) to u=7 for the running large stream: the next
    request (default u=3) is served first."""
    server = serve(SizedHandler)
    client = PacedClient(server.port, rfc9218=True)
    try:
        large = start_large(client)
        client.priority_update(large, b"u=7")
        urgent = client.request("/urgent")
        large_bytes, urgent_bytes = client.race(large, urgent)
        assert urgent_bytes == len(URGENT)
        assert large not in client.ended
        assert large_bytes <= TICK, large_bytes
    finally:
        client.close()


def test_rfc7540_priorities_for_a_client_that_does_not_opt_in(serve):
    """A client without SETTINGS_NO_RFC7540_PRIORITIES gets RFC 7540 scheduling: an
    exclusive dependency on stream 0 puts the new stream first."""
    server = serve(SizedHandler)
    client = PacedClient(server.port, rfc9218=False)
    try:
        large = start_large(client)
        urgent = client.conn.get_next_available_stream_id()
        client.conn.send_headers(urgent, [
            (":method", "GET"), (":scheme", "http"), (":authority", client.authority),
            (":path", "/urgent")], end_stream=True,
            priority_weight=256, priority_depends_on=0, priority_exclusive=True)
        client.flush()
        large_bytes, urgent_bytes = client.race(large, urgent)
        assert urgent_bytes == len(URGENT)
        assert large_bytes <= TICK, large_bytes
    finally:
        client.close()


def test_priority_header_ignored_without_the_clients_opt_in(serve):
    """The ``priority`` header only counts once the client announced
    SETTINGS_NO_RFC7540_PRIORITIES=1; otherwise both streams share by RFC 7540 weights
    (16 and 16: half each)."""
    server = serve(SizedHandler)
    client = PacedClient(server.port, rfc9218=False)
    try:
        large = start_large(client, [("priority", "u=7")])
        urgent = client.request("/urgent", headers=[("priority", "u=0")])
        large_bytes, urgent_bytes = client.race(large, urgent)
        assert urgent_bytes == len(URGENT)
        assert large_bytes > len(URGENT) // 2
    finally:
        client.close()
