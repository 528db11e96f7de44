"""RFC 6455 conformance of the WebSocket frame layer, after the Autobahn test suite's
sections (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing), over
HTTP/2 (extended CONNECT, tests/wsh2.py) and over HTTP/1.1 (the upgrade, tests/wsh1.py):
every case runs over both.

The Autobahn suite itself (autobahntestsuite on PyPI) runs on Python 2 only and speaks
HTTP/1.1, so it cannot be run here; these are our own independent cases of the same
rules. Frames are written byte by byte (wsh2.raw_frame), the server's answers read by
wsproto's frame parser, and the UTF-8 verdicts compared with Python's own decoder.
"""
from __future__ import annotations

import random

import pytest
from wsh1 import H1WebSocketClient
from wsh2 import H2WebSocketClient, raw_frame

from conftest import ServerThread
from nghttp2py import BaseRequestHandler, HTTP2Server

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Echo(BaseRequestHandler):
    def on_headers(self):
        self.accept_websocket(compression=False)

    def on_message(self, message):
        self.websocket.send(message)


@pytest.fixture(scope="module")
def server():
    thread = ServerThread(HTTP2Server(("127.0.0.1", 0), Echo, shutdown_timeout=2.0)).start()
    yield thread
    thread.stop()


# The client of each protocol, and the status that accepts a WebSocket on it.
PROTOCOLS = {"h2": (H2WebSocketClient, 200), "http1": (H1WebSocketClient, 101)}


@pytest.fixture(params=list(PROTOCOLS))
def protocol(request):
    return PROTOCOLS[request.param]


@pytest.fixture
def ws(server, protocol):
    client_class, accepted = protocol
    client = client_class(server.port)
    socket_ = client.open("/")
    assert socket_.status == accepted
    yield socket_
    client.close()


def expect_failure(ws, code: int) -> None:
    """The server closes with ``code`` and ends its side of the stream."""
    assert ws.wait_closed().code == code


def expect_echo(ws, *messages) -> None:
    assert ws.receive(len(messages)) == list(messages)


# -- 1. framing ------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 300000])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_payload_lengths(ws, opcode, length):
    payload = b"*" * length
    ws.send_raw(raw_frame(opcode, payload))
    expect_echo(ws, payload.decode() if opcode == TEXT else payload)


def test_frames_delivered_one_byte_at_a_time(ws):
    """Every split point of header, extended length, mask and payload."""
    data = (raw_frame(TEXT, b"hello") + raw_frame(BINARY, b"\x00" * 300)
            + raw_frame(PING, b"p") + raw_frame(BINARY, b"x" * 70000, fin=False)
            + raw_frame(CONT, b"y"))
    for i in range(0, 400):
        ws.send_raw(data[i:i + 1])
    ws.send_raw(data[400:])
    expect_echo(ws, "hello", b"\x00" * 300, b"x" * 70000 + b"y")
    assert ws.pongs == [b"p"]


def test_unmasked_client_frame_fails(ws):
    ws.send_raw(raw_frame(TEXT, b"hello", masked=False))
    expect_failure(ws, 1002)


def test_64_bit_length_with_the_top_bit_fails(ws):
    ws.send_raw(bytes([0x82, 0xFF]) + b"\x80" + b"\x00" * 7 + b"mask")
    expect_failure(ws, 1002)


# -- 2. pings and pongs -------------------------------------------------------------------


def test_ping_payloads_are_echoed_in_pongs(ws):
    payloads = [b"", b"\x00\xff" * 10, bytes(range(125))]
    for payload in payloads:
        ws.send_raw(raw_frame(PING, payload))
    ws.client.wait(lambda: len(ws.pongs) == 3)
    assert ws.pongs == payloads


def test_ten_pings_ten_pongs_and_unsolicited_pongs_ignored(ws):
    ws.send_raw(raw_frame(PONG, b"unsolicited"))
    for i in range(10):
        ws.send_raw(raw_frame(PING, b"%d" % i))
    ws.client.wait(lambda: len(ws.pongs) == 10)
    assert ws.pongs == [b"%d" % i for i in range(10)]
    ws.send_raw(raw_frame(TEXT, b"still open"))
    expect_echo(ws, "still open")


@pytest.mark.parametrize("frame", [
    raw_frame(PING, b"x" * 126),             # control frames carry at most 125 bytes
    raw_frame(PING, b"x", fin=False),        # and are never fragmented
    raw_frame(PONG, b"x" * 126),
    raw_frame(CLOSE, b"\x03\xe8" + b"x" * 124),
], ids=["ping-126", "ping-fragmented", "pong-126", "close-126"])
def test_oversized_or_fragmented_control_frames_fail(ws, frame):
    ws.send_raw(frame)
    expect_failure(ws, 1002)


# -- 3. reserved bits ----------------------------------------------------------------------


@pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING])
def test_reserved_bits_fail(ws, rsv, opcode):
    # RSV1 means "compressed", and no extension was negotiated here.
    ws.send_raw(raw_frame(opcode, b"abc", rsv=rsv))
    expect_failure(ws, 1002)


def test_reserved_bits_fail_after_a_valid_message(ws):
    ws.send_raw(raw_frame(TEXT, b"ok") + raw_frame(TEXT, b"bad", rsv=2)
                + raw_frame(PING, b"after"))
    expect_echo(ws, "ok")
    expect_failure(ws, 1002)
    assert ws.pongs == []  # nothing is read after the failure


# -- 4. opcodes ----------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_reserved_opcodes_fail(ws, opcode):
    ws.send_raw(raw_frame(opcode, b"payload"))
    expect_failure(ws, 1002)


# -- 5. fragmentation --------------------------------------------------------------------


def test_continuation_without_a_message_fails(ws):
    ws.send_raw(raw_frame(CONT, b"orphan"))
    expect_failure(ws, 1002)


def test_new_message_inside_a_fragmented_one_fails(ws):
    ws.send_raw(raw_frame(TEXT, b"first", fin=False) + raw_frame(TEXT, b"second"))
    expect_failure(ws, 1002)


def test_fragments_of_one_byte_and_empty_fragments(ws):
    text = "fragmented into single bytes"
    frames = [raw_frame(TEXT, text[:1].encode(), fin=False)]
    frames += [raw_frame(CONT, ch.encode(), fin=False) for ch in text[1:]]
    frames += [raw_frame(CONT, b"", fin=False), raw_frame(CONT, b"", fin=True)]
    ws.send_raw(b"".join(frames))
    expect_echo(ws, text)
    ws.send_raw(raw_frame(BINARY, b"", fin=False) + raw_frame(CONT, b"", fin=True))
    expect_echo(ws, b"")


def test_control_frames_between_fragments(ws):
    ws.send_raw(raw_frame(TEXT, b"a", fin=False) + raw_frame(PING, b"1")
                + raw_frame(CONT, b"b", fin=False) + raw_frame(PONG, b"x")
                + raw_frame(PING, b"2") + raw_frame(CONT, b"c"))
    expect_echo(ws, "abc")
    assert ws.pongs == [b"1", b"2"]


# -- 6. UTF-8 ------------------------------------------------------------------------------

VALID_UTF8 = [
    "κόσμε".encode(), b"\x00", b"\x7f", b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80",
    b"\xef\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf",
    b"\xee\x80\x80", b"\xef\xbf\xbd", "€𝄞 mixed ascii".encode() * 20,
]
INVALID_UTF8 = [
    b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff",
    b"\xc2", b"\xe2\x82", b"\xf0\x9d\x84", b"\xc2\x41", b"\xe2\x28\xa1",
    b"valid prefix \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80 then invalid",
]


@pytest.mark.parametrize("payload", VALID_UTF8, ids=repr)
def test_valid_utf8_is_echoed_whole_and_split_at_every_byte(ws, payload):
    expect = payload.decode()
    ws.send_raw(raw_frame(TEXT, payload))
    frames = [raw_frame(TEXT, payload[:1], fin=len(payload) == 1)]
    frames += [raw_frame(CONT, payload[i:i + 1], fin=i == len(payload) - 1)
               for i in range(1, len(payload))]
    ws.send_raw(b"".join(frames))
    expect_echo(ws, expect, expect)


@pytest.mark.parametrize("payload", INVALID_UTF8, ids=repr)
def test_invalid_utf8_fails_with_1007(ws, payload):
    with pytest.raises(UnicodeDecodeError):
        payload.decode()
    ws.send_raw(raw_frame(TEXT, payload))
    expect_failure(ws, 1007)


@pytest.mark.parametrize("payload", [p for p in INVALID_UTF8 if len(p) > 1], ids=repr)
def test_invalid_utf8_split_across_fragments_fails(ws, payload):
    middle = len(payload) // 2
    ws.send_raw(raw_frame(TEXT, payload[:middle], fin=False)
                + raw_frame(CONT, payload[middle:], fin=True))
    expect_failure(ws, 1007)


def test_invalid_utf8_fails_fast_before_the_message_ends(ws):
    # The first fragment is already invalid: the close comes without the last one.
    ws.send_raw(raw_frame(TEXT, b"ok \xed\xa0\x80", fin=False))
    expect_failure(ws, 1007)


def test_utf8_fuzz_against_pythons_decoder(server, protocol):
    """Random byte strings near UTF-8's edges, split at random points: valid ones are
    echoed, invalid ones close with 1007, as Python's decoder decides."""
    rng = random.Random(6455)
    alphabet = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0,
                0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
    client = protocol[0](server.port)
    try:
        ws = client.open("/")
        for _ in range(300):
            payload = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
            try:
                expected = payload.decode()
            except UnicodeDecodeError:
                expected = None
            cut = rng.randint(0, len(payload))
            ws.send_raw(raw_frame(TEXT, payload[:cut], fin=False)
                        + raw_frame(CONT, payload[cut:]))
            if expected is None:
                assert ws.wait_closed().code == 1007, payload
                ws = client.open("/")
            else:
                assert ws.receive() == [expected], payload
    finally:
        client.close()


# -- 7. closing ------------------------------------------------------------------------------


def test_close_reason_of_123_bytes(ws):
    ws.send_raw(raw_frame(CLOSE, b"\x03\xe8" + b"r" * 123))
    assert ws.wait_closed().code == 1000


def test_frames_after_the_close_frame_are_ignored(ws):
    ws.send_raw(raw_frame(CLOSE, b"\x03\xe8") + raw_frame(TEXT, b"late")
                + raw_frame(PING, b"late"))
    assert ws.wait_closed().code == 1000
    assert ws.messages == [] and ws.pongs == []


def test_close_in_the_middle_of_a_fragmented_message(ws):
    ws.send_raw(raw_frame(TEXT, b"part", fin=False) + raw_frame(CLOSE, b"\x03\xe8"))
    assert ws.wait_closed().code == 1000
    assert ws.messages == []
