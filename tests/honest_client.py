"""The honest client of the attack tests, in a process of its own: one HTTP/2 connection
(the ``h2`` package) sending ``GET /`` every 10 ms, each after the previous answer.

``python honest_client.py PORT``: prints ``ready`` once the first response is in, then
goes on until its stdin closes, and prints JSON: ``count``, ``max_ms``, ``p99_ms``,
``median_ms`` of the response times, and ``error`` (None, or why it stopped early).
With HONEST_CLIENT_TRACE=FILE, each request's start and response time go to FILE.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events

INTERVAL = 0.010


def main(port: int) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
               (":path", "/")]
    latencies: list[float] = []
    starts: list[float] = []
    error = None
    next_at = time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        done = False
        try:
            while not done:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded) \
                            and event.stream_id == stream_id:
                        done = True
                    elif isinstance(event, (h2.events.StreamReset,
                                            h2.events.ConnectionTerminated)):
                        raise ConnectionError(repr(event))
                pending = conn.data_to_send()
                if pending:
                    sock.sendall(pending)
        except (OSError, ConnectionError) as exc:
            error = str(exc) or type(exc).__name__
            break
        latencies.append(time.monotonic() - started)
        starts.append(started)
        if len(latencies) == 1:  # the connection is up
            print("ready", flush=True)
        next_at = max(next_at + INTERVAL, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))
    stop.wait()
    trace = os.environ.get("HONEST_CLIENT_TRACE")
    if trace:  # every response time, for finding when a stall happened
        with open(trace, "w") as out:
            out.writelines(f"{t:.4f} {d * 1000:.2f}\n" for t, d in zip(starts, latencies))
    ordered = sorted(latencies[1:]) or [0.0]
    print(json.dumps({
        "count": len(ordered), "max_ms": ordered[-1] * 1000,
        "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000,
        "median_ms": ordered[len(ordered) // 2] * 1000, "error": error}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
