#!/bin/sh
# make asan: build the extension with AddressSanitizer into build/asan (the
# in-place build is left alone) and run the engine's tests against it.
#   scripts/asan.sh [PYTHON] [pytest arguments]
set -eu
PY=${1:-.venv/bin/python}
[ $# -gt 0 ] && shift
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
out=build/asan
rm -rf "$out/pkg"
mkdir -p "$out/pkg"
cp -r nghttp2py "$out/pkg/"
rm -f "$out/pkg/nghttp2py/"*.so
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -O1 -g" LDFLAGS="-fsanitize=address" \
    "$PY" setup.py -q build_ext --build-lib "$out/pkg" --build-temp "$out/tmp"
asan=$(gcc -print-file-name=libasan.so)
# CPython is not instrumented: its own allocations are not checked, and its
# arenas look like leaks, hence detect_leaks=0.
root=$(pwd)
[ $# -gt 0 ] || set -- test_protocol_errors.py test_rfc9113.py test_fuzz.py test_flow_control.py \
    test_request_bodies.py test_streams.py test_bodies.py test_hpack.py \
    test_handler_errors.py test_misuse.py test_misbehaving_apps.py test_async_handlers.py
tests=""
for name in "$@"; do tests="$tests $root/tests/$name"; done
# Tests whose server or script is another Python process: that one would load
# the ASan build without the ASan runtime.
skip="not 1gib_upload and not 100_mib_request_body and not test_example_runs"
# From inside build/asan/pkg, so that `import nghttp2py` finds the ASan build.
cd "$out/pkg"
# LD_PRELOAD loads the ASan runtime into this interpreter only: it is taken out
# of the environment before the peers (curl, h2load, servers) are started.
exec env LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
    "$PY" -c 'import os, sys, pytest; del os.environ["LD_PRELOAD"]; sys.exit(pytest.main())' \
    -p no:cacheprovider -q -k "$skip" $tests
