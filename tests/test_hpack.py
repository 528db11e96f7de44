"""HPACK codec tests: HDDeflater, HDInflater, HDTableEntry, print_hd_table.

The pure-Python ``hpack`` package is the independent peer: whatever we
deflate it must decode, and whatever it encodes we must inflate, across
sequences of blocks that share dynamic-table state.
"""
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nghttp2py
import nghttp2py.hpack
from nghttp2py.errors import HPACKError, NGHTTP2Error
from nghttp2py.hpack import HDDeflater, HDInflater, HDTableEntry, print_hd_table

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hpack_roundtrip.py"


@pytest.fixture
def hpack():
    """The ``hpack`` package, the oracle for interoperability."""
    return pytest.importorskip("hpack")


def as_bytes(headers):
    return [(n.encode() if isinstance(n, str) else n,
             v.encode() if isinstance(v, str) else v) for n, v in headers]


REQUEST = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "www.example.com"),
    (":path", "/resource?id=42"),
    ("user-agent", "nghttp2py-test/1.0"),
    ("accept", "*/*"),
    ("cookie", "session=0123456789abcdef0123456789abcdef"),
]

HEADER_LISTS = {
    "request": REQUEST,
    "empty-list": [],
    "empty-values": [("x-empty", ""), (b"x-empty-bytes", b""), ("", "")],
    "large-value": [("x-large", "v" * 10000), ("x-larger", b"\x00\xff" * 5000)],
    "non-ascii": [("x-unicode", "grüße, 日本語 ☃"), ("x-é", "é")],
    "mixed-types": [(b"x-b", "str"), ("x-s", b"bytes")],
    "case-kept": [("X-Mixed-Case", "Value"), (b"UPPER", b"Upper")],
    "repeated": [(f"x-repeat-{i % 5}", f"value-{i % 3}")
                 for i in range(60)],
    "binary": [(b"x-bin", bytes(range(256)))],
}


def random_blocks(seed, count=40):
    """Header lists that reuse names and values, so the tables fill up,
    evict, and get hit by later blocks."""
    rng = random.Random(seed)
    names = [":method", ":path", "user-agent", "accept", "cookie",
             "x-trace-id", "x-custom", "content-type", "x-big"]
    values = ["GET", "/", "/a/b/c", "text/html", "a" * 300, "b" * 1500,
              "application/json", "", "é"]
    blocks = []
    for _ in range(count):
        n = rng.randint(0, 12)
        blocks.append([(rng.choice(names), rng.choice(values)
                        if rng.random() < 0.8 else f"r{rng.randint(0, 10**9)}")
                       for _ in range(n)])
    return blocks


# --- round trip --------------------------------------------------------------

@pytest.mark.parametrize("headers", HEADER_LISTS.values(), ids=HEADER_LISTS.keys())
def test_round_trip(headers):
    deflater, inflater = HDDeflater(), HDInflater()
    block = deflater.deflate(headers)
    assert isinstance(block, bytes)
    assert inflater.inflate(block) == as_bytes(headers)
    # And again, now that the dynamic table holds some of them.
    assert inflater.inflate(deflater.deflate(headers)) == as_bytes(headers)
    assert tables(deflater) == tables(inflater)


def test_round_trip_sequence():
    deflater, inflater = HDDeflater(), HDInflater()
    for headers in random_blocks(1):
        assert inflater.inflate(deflater.deflate(headers)) == as_bytes(headers)
        assert tables(deflater) == tables(inflater)


def test_repeated_headers_use_dynamic_table():
    deflater = HDDeflater()
    headers = [("x-custom-header", f"some-fairly-long-value-{i}")
               for i in range(10)]
    first = deflater.deflate(headers)
    second = deflater.deflate(headers)
    assert len(second) == len(headers)  # one indexed byte per header
    assert len(second) < len(first) // 10
    assert len(deflater.get_hd_table()) == len(headers)


def test_inflate_accepts_bytes_like():
    block = HDDeflater().deflate(REQUEST)
    for data in (bytearray(block), memoryview(block)):
        assert HDInflater().inflate(data) == as_bytes(REQUEST)


def test_deflate_accepts_any_iterable_and_bytes_subclass():
    class B(bytes):
        pass

    headers = ((B(b"x-sub"), B(b"value")) for _ in range(2))
    block = HDDeflater().deflate(headers)
    assert HDInflater().inflate(block) == [(b"x-sub", b"value")] * 2


def test_deflate_keeps_no_references():
    name, value = b"x-refcount-name", b"x-refcount-value"
    before = sys.getrefcount(name), sys.getrefcount(value)
    deflater = HDDeflater()
    for _ in range(100):
        deflater.deflate([(name, value)])
    assert (sys.getrefcount(name), sys.getrefcount(value)) == before


# --- interoperability with the hpack package -----------------------------------

@pytest.mark.parametrize("headers", HEADER_LISTS.values(), ids=HEADER_LISTS.keys())
def test_deflate_decoded_by_hpack(hpack, headers):
    decoder = hpack.Decoder(max_header_list_size=1 << 20)
    assert decoder.decode(HDDeflater().deflate(headers), raw=True) \
        == as_bytes(headers)


@pytest.mark.parametrize("huffman", [True, False])
@pytest.mark.parametrize("headers", HEADER_LISTS.values(), ids=HEADER_LISTS.keys())
def test_hpack_encoded_inflated(hpack, headers, huffman):
    block = hpack.Encoder().encode(as_bytes(headers), huffman=huffman)
    assert HDInflater().inflate(block) == as_bytes(headers)


def test_deflate_sequence_decoded_by_hpack(hpack):
    deflater = HDDeflater()
    decoder = hpack.Decoder(max_header_list_size=1 << 20)
    for headers in random_blocks(2):
        assert decoder.decode(deflater.deflate(headers), raw=True) \
            == as_bytes(headers)
        assert tables(deflater) == hpack_table(decoder)


@pytest.mark.parametrize("huffman", [True, False])
def test_hpack_sequence_inflated(hpack, huffman):
    encoder, inflater = hpack.Encoder(), HDInflater()
    for headers in random_blocks(3):
        block = encoder.encode(as_bytes(headers), huffman=huffman)
        assert inflater.inflate(block) == as_bytes(headers)
        assert tables(inflater) == hpack_table(encoder)


# --- dynamic table -------------------------------------------------------------

def tables(codec):
    return [(e.name, e.value, e.space) for e in codec.get_hd_table()]


def hpack_table(codec):
    """The hpack package's dynamic table, newest first, like get_hd_table."""
    return [(n, v, len(n) + len(v) + 32)
            for n, v in codec.header_table.dynamic_entries]


def test_get_hd_table_content_order_and_space():
    deflater, inflater = HDDeflater(), HDInflater()
    assert deflater.get_hd_table() == [] and inflater.get_hd_table() == []
    headers = [("x-first", "1"), ("x-second", "22"), ("x-third", "é")]
    inflater.inflate(deflater.deflate(headers))
    expected = [(b"x-third", "é".encode(), 7 + 2 + 32),
                (b"x-second", b"22", 8 + 2 + 32),
                (b"x-first", b"1", 7 + 1 + 32)]
    assert tables(deflater) == expected
    assert tables(inflater) == expected
    for entry in deflater.get_hd_table():
        assert isinstance(entry, HDTableEntry)
        assert entry.namelen == len(entry.name)
        assert entry.valuelen == len(entry.value)
        assert entry.space == entry.namelen + entry.valuelen + 32


def test_get_hd_table_is_a_copy():
    deflater = HDDeflater()
    deflater.deflate([("x-a", "1")])
    table = deflater.get_hd_table()
    deflater.deflate([("x-b", "2")])
    assert [e.name for e in table] == [b"x-a"]
    assert [e.name for e in deflater.get_hd_table()] == [b"x-b", b"x-a"]


def test_table_respects_size_limit():
    deflater = HDDeflater(256)
    inflater = HDInflater()
    for i in range(50):
        headers = [(f"x-h{i}", "v" * (i % 17))]
        inflater.inflate(deflater.deflate(headers))
        assert sum(e.space for e in deflater.get_hd_table()) <= 256
        assert tables(deflater) == tables(inflater)
    assert deflater.get_hd_table()[0].name == b"x-h49"


def test_entry_too_large_for_table_is_not_inserted():
    deflater = HDDeflater()
    headers = [("x-large", "v" * 5000)]
    block = deflater.deflate(headers)
    assert deflater.get_hd_table() == []
    assert HDInflater().inflate(block) == as_bytes(headers)


def test_table_entry():
    entry = HDTableEntry(b"name", b"value")
    assert (entry.name, entry.namelen, entry.value, entry.valuelen,
            entry.space) == (b"name", 4, b"value", 5, 41)
    assert repr(entry) == "HDTableEntry(name=b'name', value=b'value', space=41)"
    with pytest.raises(AttributeError):
        entry.name = b"other"
    with pytest.raises(TypeError):
        HDTableEntry("name", b"value")


def test_print_hd_table(capsys):
    deflater = HDDeflater()
    deflater.deflate([("x-first", "1"), ("x-é", "caf\u00e9")])
    print_hd_table(deflater.get_hd_table())
    assert capsys.readouterr().out == (
        "[  1] (s =  41) x-\ufffd\ufffd: caf\ufffd\ufffd\n"
        "[  2] (s =  40) x-first: 1\n")
    print_hd_table([])
    assert capsys.readouterr().out == ""


def test_the_names_nghttp2s_former_binding_documented(hpack):
    # Its python-apiref: HDDeflater(hd_table_bufsize_max=DEFLATE_MAX_HEADER_TABLE_SIZE),
    # both constants 4096, and the same names at the top of the package.
    for module in (nghttp2py, nghttp2py.hpack):
        assert module.DEFAULT_HEADER_TABLE_SIZE == 4096
        assert module.DEFLATE_MAX_HEADER_TABLE_SIZE == 4096
        for name in ("HDDeflater", "HDInflater", "HDTableEntry", "print_hd_table"):
            assert getattr(module, name) is getattr(nghttp2py.hpack, name)
    # A deflater made the documented way never uses more table than that,
    # however much the peer allows ...
    deflater = HDDeflater(hd_table_bufsize_max=nghttp2py.DEFLATE_MAX_HEADER_TABLE_SIZE)
    deflater.change_table_size(1 << 20)
    decoder = hpack.Decoder()
    for i in range(200):
        decoder.decode(deflater.deflate([(f"x-header-{i}", "v" * 40)]), raw=True)
        assert sum(e.space for e in deflater.get_hd_table()) <= 4096
    assert sum(e.space for e in deflater.get_hd_table()) > 4096 - 90  # ... and all of it.
    # An inflater starts with the default table, which a peer may fill.
    encoder = hpack.Encoder()
    inflater = HDInflater()
    for i in range(200):
        inflater.inflate(encoder.encode([(f"x-header-{i}", "v" * 40)]))
    assert 4096 - 90 < sum(e.space for e in inflater.get_hd_table()) <= 4096


# --- table size changes ----------------------------------------------------------

def test_deflater_change_table_size_to_zero(hpack):
    deflater = HDDeflater()
    decoder = hpack.Decoder()
    blocks = random_blocks(4, count=10)
    for headers in blocks:
        decoder.decode(deflater.deflate(headers), raw=True)
    assert deflater.get_hd_table() != []

    # The peer's SETTINGS_HEADER_TABLE_SIZE drops to 0.
    deflater.change_table_size(0)
    decoder.max_allowed_table_size = 0
    assert deflater.get_hd_table() == []
    for headers in blocks:
        assert decoder.decode(deflater.deflate(headers), raw=True) \
            == as_bytes(headers)
        assert deflater.get_hd_table() == []
        assert decoder.header_table_size == 0

    # And back up: the table fills again, in step with the peer.
    deflater.change_table_size(4096)
    decoder.max_allowed_table_size = 4096
    for headers in blocks:
        assert decoder.decode(deflater.deflate(headers), raw=True) \
            == as_bytes(headers)
        assert tables(deflater) == hpack_table(decoder)
    assert deflater.get_hd_table() != []


def test_deflater_never_exceeds_constructor_limit(hpack):
    deflater = HDDeflater(hd_table_bufsize_max=100)
    decoder = hpack.Decoder()
    deflater.change_table_size(65536)  # the peer allows more; we don't use it
    for i in range(20):
        headers = [(f"x-n{i}", "value")]
        assert decoder.decode(deflater.deflate(headers), raw=True) \
            == as_bytes(headers)
        assert sum(e.space for e in deflater.get_hd_table()) <= 100
    assert decoder.header_table_size == 100


def test_inflater_change_table_size(hpack):
    encoder, inflater = hpack.Encoder(), HDInflater()
    headers = [("x-a", "1"), ("x-b", "2")]
    inflater.inflate(encoder.encode(headers))
    assert len(inflater.get_hd_table()) == 2

    # We advertised SETTINGS_HEADER_TABLE_SIZE 0 and the peer acked it.
    inflater.change_table_size(0)
    assert inflater.get_hd_table() == []
    encoder.header_table_size = 0
    for _ in range(3):
        assert inflater.inflate(encoder.encode(headers)) == as_bytes(headers)
        assert inflater.get_hd_table() == []


def test_inflater_requires_size_update_after_shrink(hpack):
    encoder, inflater = hpack.Encoder(), HDInflater()
    inflater.inflate(encoder.encode([("x-a", "1")]))
    inflater.change_table_size(0)
    # The peer ignored our smaller table: its block lacks the size update.
    with pytest.raises(HPACKError):
        inflater.inflate(encoder.encode([("x-a", "1")]))


def test_negative_table_size():
    with pytest.raises(ValueError):
        HDDeflater(-1)
    with pytest.raises(ValueError):
        HDDeflater().change_table_size(-1)
    with pytest.raises(ValueError):
        HDInflater().change_table_size(-1)


# --- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"\xff\xff\xff\xff\xff",           # integer overflow
    b"\xbe",                           # index 62: dynamic table is empty
    b"\x80",                           # index 0
    b"\x40\x85\xff\xff",               # literal: name truncated
    HDDeflater().deflate(REQUEST)[:-3],  # block cut short
], ids=["overflow", "bad-index", "index-0", "truncated-name", "truncated-block"])
def test_corrupt_block_raises_and_inflater_refuses_further_use(data):
    inflater = HDInflater()
    with pytest.raises(HPACKError) as excinfo:
        inflater.inflate(data)
    assert isinstance(excinfo.value, NGHTTP2Error)
    assert excinfo.value.code == -523  # NGHTTP2_ERR_HEADER_COMP

    good = HDDeflater().deflate(REQUEST)
    with pytest.raises(HPACKError, match="unusable"):
        inflater.inflate(good)
    with pytest.raises(HPACKError, match="unusable"):
        inflater.change_table_size(4096)
    assert HDInflater().inflate(good) == as_bytes(REQUEST)


def test_corrupt_block_after_good_ones():
    deflater, inflater = HDDeflater(), HDInflater()
    inflater.inflate(deflater.deflate(REQUEST))
    with pytest.raises(HPACKError):
        inflater.inflate(b"\xff\xff\xff\xff\xff")
    with pytest.raises(HPACKError):
        inflater.inflate(deflater.deflate(REQUEST))


@pytest.mark.parametrize("headers, match", [
    ([("x-a", 1)], r"header 0: value must be str or bytes, not int"),
    ([("x-a", "1"), (None, "v")], r"header 1: name must be str or bytes, not NoneType"),
    ([(bytearray(b"x"), b"v")], r"header 0: name must be str or bytes, not bytearray"),
    ([("x-a",)], r"header 0: expected a \(name, value\) pair"),
    ([("x-a", "1", "2")], r"header 0: expected a \(name, value\) pair"),
    ([42], r"header 0: expected a \(name, value\) pair"),
    (42, r"not iterable"),
])
def test_deflate_type_errors(headers, match):
    deflater = HDDeflater()
    with pytest.raises(TypeError, match=match):
        deflater.deflate(headers)
    # A rejected call leaves the deflater usable.
    assert HDInflater().inflate(deflater.deflate(REQUEST)) == as_bytes(REQUEST)


def test_inflate_type_errors():
    inflater = HDInflater()
    for data in ("text", None, 42):
        with pytest.raises(TypeError):
            inflater.inflate(data)
    assert inflater.inflate(HDDeflater().deflate(REQUEST)) == as_bytes(REQUEST)


def test_unencodable_str():
    with pytest.raises(UnicodeEncodeError):
        HDDeflater().deflate([("x-a", "\ud800")])


def test_uninitialised_objects_do_not_crash():
    for cls in (HDDeflater, HDInflater):
        obj = cls.__new__(cls)
        with pytest.raises(RuntimeError):
            obj.get_hd_table()
        with pytest.raises(RuntimeError):
            obj.change_table_size(0)
    with pytest.raises(RuntimeError):
        HDDeflater.__new__(HDDeflater).deflate([])
    with pytest.raises(RuntimeError):
        HDInflater.__new__(HDInflater).inflate(b"")


# --- example --------------------------------------------------------------------

def test_example_runs():
    package_root = Path(nghttp2py.hpack.__file__).absolute().parent.parent
    env = dict(os.environ, PYTHONPATH=str(package_root))
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    sizes = [int(n) for n in re.findall(r"^block \d: (\d+) bytes", out, re.M)]
    assert len(sizes) == 2 and sizes[1] < sizes[0]
    table = re.findall(r"^\[ *(\d+)\] \(s = *(\d+)\) ([^:]+|:[^:]+): (.*)$",
                       out, re.M)
    assert [t[2] for t in table] == ["accept-language", "user-agent",
                                     ":authority"]
    assert all(int(s) == len(n) + len(v) + 32 for _, s, n, v in table)
    assert "  :authority: example.org\n" in out
    assert "  user-agent: nghttp2py-example/1.0\n" in out
