"""Compress a header list with HPACK, show the dynamic table, inflate it back.

Run it (after ``make``, or ``pip install .``)::

    python examples/hpack_roundtrip.py

The second block of the same headers is much smaller: the deflater sends
indexes into the dynamic table both sides now share.
"""
from nghttp2py.hpack import HDDeflater, HDInflater, print_hd_table

HEADERS = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.org"),
    (":path", "/index.html"),
    ("user-agent", "nghttp2py-example/1.0"),
    ("accept-language", "fr-CH, fr;q=0.9, en;q=0.8"),
]


def main() -> None:
    deflater = HDDeflater()
    inflater = HDInflater()
    expected = [(name.encode(), value.encode()) for name, value in HEADERS]
    plain = sum(len(name) + len(value) for name, value in expected)

    for n in (1, 2):
        block = deflater.deflate(HEADERS)
        print(f"block {n}: {len(block)} bytes for {plain} bytes of headers")
        headers = inflater.inflate(block)
        if headers != expected:
            raise SystemExit(f"round trip failed: {headers!r}")

    print("dynamic table:")
    print_hd_table(deflater.get_hd_table())
    print("inflated:")
    for name, value in headers:
        print(f"  {name.decode()}: {value.decode()}")


if __name__ == "__main__":
    main()
