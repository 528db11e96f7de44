#!/bin/sh
# Make a self-signed certificate for localhost in DIR (default .certs/),
# unless DIR/server.crt and DIR/server.key already exist.
set -eu

dir=${1:-.certs}
[ -f "$dir/server.crt" ] && [ -f "$dir/server.key" ] && exit 0

mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 365 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
chmod 600 "$dir/server.key"
echo "make-cert: wrote $dir/server.crt and $dir/server.key"
