"""A header field over libnghttp2's 64 KiB limit: 431 on its stream, the connection kept.

libnghttp2 1.52 cannot decode a string whose encoded length is over 65,536 bytes
and would end the connection with COMPRESSION_ERROR; the frame guard replaces such
a field before nghttp2 sees the block (src/oversized.pxi). These tests check the
431, and that the dynamic table stays in step: a later stream on the same
connection names fields by their table index and must get them right.
"""
from __future__ import annotations

import socket
import struct
import time

import h2.events
import pytest
from attacks import hpack_int, literal
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from nghttp2py import BaseRequestHandler, ServerSettings
from rawh2 import (
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    body_of,
    ended,
    frame,
    frames_of,
    is_server_settings,
    kind,
    status_of,
)

BIG = 100 * 1024
PADDED, PRIORITY_FLAG = 0x8, 0x20
HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


class Echo(BaseRequestHandler):
    """Answers with its x-* request fields, one per line (long values by their length)."""

    def on_request_done(self):
        lines = [name + b"=" + (value if len(value) < 100 else str(len(value)).encode())
                 for name, value in self.headers if name.startswith(b"x-")]
        self.send_response(200, body=b"\n".join(lines))


@pytest.fixture
def client(serve, raw_client):
    def connect(**settings):
        server = serve(Echo, settings=ServerSettings(**settings))
        connection = raw_client(server.port)
        connection.frames_until(is_server_settings, 5)
        return connection
    return connect


def pseudo_headers(authority: bytes, path: bool = True) -> bytes:
    """GET, http and ``authority``, and ``/`` if ``path``: static-table references only."""
    return b"\x82\x86" + (b"\x84" if path else b"") + b"\x01" + hpack_int(len(authority), 7) \
        + authority


def string(value: bytes, huffman: bool = False) -> bytes:
    if huffman:
        value = HUFFMAN.encode(value)
        return hpack_int(len(value), 7, 0x80) + value
    return hpack_int(len(value), 7) + value


def frames(stream_id: int, block: bytes, *, end_stream: bool = True, size: int = 16384,
           padded: bool = False, priority: bool = False) -> bytes:
    """``block`` as a HEADERS frame and as many CONTINUATION frames as it takes."""
    prefix = b""
    flags = END_STREAM if end_stream else 0
    if padded:
        flags |= PADDED
        prefix += b"\x05"
    if priority:
        flags |= PRIORITY_FLAG
        prefix += struct.pack(">IB", 0, 200)
    suffix = b"\x00" * 5 if padded else b""
    first = size - len(prefix) - len(suffix)
    chunks = [block[:first]] + [block[i:i + size] for i in range(first, len(block), size)]
    out = []
    for index, chunk in enumerate(chunks):
        last = END_HEADERS if index == len(chunks) - 1 else 0
        if index == 0:
            out.append(frame(HEADERS, flags | last, stream_id, prefix + chunk + suffix))
        else:
            out.append(frame(CONTINUATION, last, stream_id, chunk))
    return b"".join(out)


def answer(connection, stream_id: int) -> tuple[bytes | None, bytes]:
    received = connection.frames_until(ended(stream_id), 10)
    assert not frames_of(received, "GoAwayFrame"), [kind(f) for f in received]
    return status_of(received, stream_id), body_of(received, stream_id)


# The oversized field of each case, and whether it empties the dynamic table.
OVERSIZED = {
    "incremental-indexing": (b"\x40" + string(b"x-big") + string(b"v" * BIG), True),
    "incremental-indexing-indexed-name": (b"\x7a" + string(b"v" * BIG), True),  # user-agent
    "without-indexing": (b"\x00" + string(b"x-big") + string(b"v" * BIG), False),
    "never-indexed": (b"\x10" + string(b"x-big") + string(b"v" * BIG), False),
    "huffman-incremental-indexing": (
        b"\x40" + string(b"x-big") + string(b"x" * 80_000, huffman=True), True),
    "huffman-never-indexed-indexed-name": (b"\x1f\x2b" + string(b"x" * 80_000, huffman=True),
                                           False),  # user-agent, a 4-bit index of 58
    "name": (b"\x00" + string(b"x-" + b"n" * BIG) + string(b"v"), False),
    "name-incremental-indexing": (b"\x40" + string(b"x-" + b"n" * BIG) + string(b"v"), True),
}


@pytest.mark.parametrize("case", list(OVERSIZED))
def test_oversized_field_gets_431_and_the_table_stays_in_step(client, case):
    field, empties = OVERSIZED[case]
    connection = client()
    authority = connection.authority
    block = (pseudo_headers(authority) + literal(b"x-kept", b"yes", indexed=True) + field
             + literal(b"x-after", b"2", indexed=True))
    assert len(HUFFMAN.encode(b"x" * 80_000)) > 65536
    connection.send(frames(1, block))
    assert answer(connection, 1)[0] == b"431"
    # Index 62 is the newest entry, x-after; x-kept is 63 unless the field emptied the table.
    later = pseudo_headers(authority) + hpack_int(62, 7, 0x80)
    if not empties:
        later += hpack_int(63, 7, 0x80)
    connection.send(frames(3, later))
    status, body = answer(connection, 3)
    assert status == b"200"
    assert body == (b"x-after=2" if empties else b"x-after=2\nx-kept=yes")


def test_a_field_that_emptied_the_table_left_nothing_to_name(client):
    """The 431 block's oversized field (incremental indexing) emptied the table, as
    the client's encoder expects: naming an evicted entry is a COMPRESSION_ERROR."""
    connection = client()
    block = (pseudo_headers(connection.authority) + literal(b"x-kept", b"yes", indexed=True)
             + OVERSIZED["incremental-indexing"][0])
    connection.send(frames(1, block))
    assert answer(connection, 1)[0] == b"431"
    connection.send(frames(3, pseudo_headers(connection.authority) + hpack_int(62, 7, 0x80)))
    received = connection.frames_until(lambda f: False, 5)
    assert [f.error_code for f in frames_of(received, "GoAwayFrame")] == [9]  # COMPRESSION


@pytest.mark.parametrize("field", [
    b"\x04" + string(b"/" + b"p" * BIG),  # :path, without indexing
    b"\x41" + string(b"h" * BIG),  # :authority, incremental indexing
    b"\x10" + string(b":authority") + string(b"h" * BIG),  # by a literal name
], ids=["path", "authority", "authority-literal-name"])
def test_oversized_pseudo_header_gets_431(client, field):
    connection = client()
    path = not field.startswith(b"\x04")
    authority = b"\x01" + string(connection.authority) if field.startswith(b"\x04") else b""
    connection.send(frames(1, b"\x82\x86" + (b"\x84" if path else b"") + authority + field))
    assert answer(connection, 1)[0] == b"431"
    connection.send(frames(3, pseudo_headers(connection.authority)))
    assert answer(connection, 3)[0] == b"200"


def test_padded_prioritised_block_split_over_reads(client):
    """Padding and priority on the HEADERS frame, small frames, and the bytes sent
    in pieces that split frame headers across reads."""
    connection = client()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    block = (pseudo_headers(connection.authority) + literal(b"x-kept", b"yes", indexed=True)
             + OVERSIZED["without-indexing"][0])
    data = frames(1, block, size=12000, padded=True, priority=True)
    for cut in (4, 12003, 12013, 24030, len(data)):
        connection.send(data[:cut])
        data = data[cut:]
        time.sleep(0.02)
    connection.send(data)
    assert answer(connection, 1)[0] == b"431"
    connection.send(frames(3, pseudo_headers(connection.authority) + hpack_int(62, 7, 0x80)))
    assert answer(connection, 3) == (b"200", b"x-kept=yes")


@pytest.mark.parametrize("value", [
    string(b"v" * 65536),
    # 62,500 bytes on the wire, 100,000 decoded: nghttp2 decodes it, the list limit judges.
    string(b"a" * 100_000, huffman=True),
], ids=["raw-64-KiB", "huffman-decoding-to-100-KB"])
def test_a_field_nghttp2_can_decode_is_served(client, value):
    connection = client(max_header_list_size=256 * 1024)
    block = pseudo_headers(connection.authority) + b"\x40" + string(b"x-big") + value \
        + literal(b"x-after", b"2", indexed=True)
    connection.send(frames(1, block))
    status, body = answer(connection, 1)
    assert status == b"200"
    assert body.split(b"\n")[1] == b"x-after=2"
    assert body.split(b"\n")[0] in (b"x-big=65536", b"x-big=100000")


def test_h2_client_gets_431_and_its_next_request_is_served(serve, h2_client):
    """The h2 package's encoder: indexing, Huffman where shorter, CONTINUATION frames."""
    server = serve(Echo)
    connection = h2_client(server.port)
    headers = [("x-before", "1"), ("x-big", "x" * BIG), ("x-after", "2")]
    first = connection.request(headers=headers)
    assert connection.response(first).status == 431
    second = connection.request(headers=[("x-after", "2"), ("x-before", "1")])
    response = connection.response(second)
    assert response.status == 200
    assert response.body == b"x-after=2\nx-before=1"
    assert not [e for e in response.events if isinstance(e, h2.events.ConnectionTerminated)]


def test_a_block_too_large_to_hold_back_is_handed_over_as_it_came(client):
    """Past 256 KiB a header block is no longer held back (memory per connection): what
    was held goes to nghttp2, then the rest, nothing lost or repeated. With the list
    limit raised to allow it, a 300 KB block of ordinary fields is served whole."""
    connection = client(max_frame_size=64 * 1024, max_header_list_size=1024 * 1024)
    block = pseudo_headers(connection.authority) + b"".join(
        literal(b"x-%03d" % i, b"v" * 1000) for i in range(300))
    connection.send(frames(1, block, size=60 * 1024))
    status, body = answer(connection, 1)
    assert status == b"200"
    assert body.split(b"\n") == [b"x-%03d=1000" % i for i in range(300)]


def test_oversized_trailer_field_is_dropped_and_the_request_served(client):
    """In trailers, a field too long to decode drops its block's fields (and nothing
    else): the request, its body in, is answered; the connection and its table kept."""
    connection = client()
    connection.send(frame(HEADERS, END_HEADERS, 1, pseudo_headers(connection.authority)
                          + literal(b"x-kept", b"yes", indexed=True))
                    + frame(0, 0, 1, b"body")
                    + frames(1, OVERSIZED["never-indexed"][0]))
    assert answer(connection, 1) == (b"200", b"x-kept=yes")
    connection.send(frames(3, pseudo_headers(connection.authority) + hpack_int(62, 7, 0x80)))
    assert answer(connection, 3) == (b"200", b"x-kept=yes")


def test_continuation_on_another_stream_is_still_a_connection_error(client):
    """A block that would be rewritten is not made valid by it: with a CONTINUATION on
    another stream it goes to libnghttp2 as it came, a connection error (the field
    too long to decode comes first: COMPRESSION_ERROR)."""
    connection = client()
    data = frames(1, pseudo_headers(connection.authority) + OVERSIZED["without-indexing"][0])
    last = data.rindex(bytes((CONTINUATION,)) + b"\x04\x00\x00\x00\x01") - 3
    connection.send(data[:last + 5] + b"\x00\x00\x00\x03" + data[last + 9:])
    received = connection.frames_until(lambda f: False, 5)
    assert [f.error_code for f in frames_of(received, "GoAwayFrame")] == [9]


def test_frames_split_across_reads_anywhere(client):
    """The guard holds back a frame header split across reads, and every header block
    that spans frames: bytes sent a few at a time still make the same requests."""
    connection = client()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = b""
    for stream_id in range(1, 12, 2):
        block = pseudo_headers(connection.authority) + literal(b"x-n", b"%d" % stream_id)
        data += frames(stream_id, block, size=7) if stream_id % 4 == 1 \
            else frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block)
    for start in range(0, len(data), 5):
        connection.send(data[start:start + 5])
        time.sleep(0.001)
    for stream_id in range(1, 12, 2):
        assert answer(connection, stream_id) == (b"200", b"x-n=%d" % stream_id)
