#!/bin/sh
# Make sure the Debian packages the build and the tests need are installed.
# Usage: scripts/ensure-deps.sh [--test] [PYTHON]   (a no-op when everything is present)
# --test adds what only the test suite needs (a browser for the site test, h2o as a
# server the client is tested against).
set -eu

PACKAGES="libnghttp2-dev nghttp2-client nghttp2-server pkg-config openssl curl build-essential"
if [ "${1:-}" = "--test" ]; then
    PACKAGES="$PACKAGES chromium h2o"
    shift
fi
PYTHON=${1:-${PYTHON:-python3}}

missing=
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $pkg"
done

# python3-dev only matters when the chosen Python has no headers (a pyenv or
# venv Python brings its own).
if ! "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
then
    missing="$missing python3-dev"
fi
# Debian's own python3 cannot create venvs without python3-venv.
"$PYTHON" -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "ensure-deps: installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
else
    echo "ensure-deps: missing Debian packages; run:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi
