#!/usr/bin/env bash
# Makes the example's self-signed certificate on first start, as Debian's ssl-cert package makes
# its "snakeoil" pair: an ECDSA P-256 key and a certificate for HOSTNAME (and localhost), valid
# 10 years. Does nothing when DIR already holds both files, so a certificate an operator put there
# stays. Usage: tools/example-cert.sh DIR HOSTNAME
set -euo pipefail
dir=$1
host=$2
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then exit 0; fi
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d "$dir/.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=$host" -addext "subjectAltName=DNS:$host,DNS:localhost" \
  -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
chmod 0644 "$tmp/cert.pem"
mv "$tmp/key.pem" "$dir/key.pem"
mv "$tmp/cert.pem" "$dir/cert.pem"
echo "example-cert: made a self-signed certificate for $host in $dir (replace it with a real one)"
