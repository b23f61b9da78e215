#!/usr/bin/env bash
# Installs what is needed, builds ringmx (release) and starts it in the foreground with the bundled
# example config: SMTP with STARTTLS on 127.0.0.1:2525, spool in ./run/spool, control socket
# ./run/control.sock. On first start it makes a self-signed certificate for the example's hostname
# in ./run/tls (tools/example-cert.sh); put a real one there to serve it instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j "$(nproc)" --target ringmx
mkdir -p run
bash tools/example-cert.sh run/tls mx.example.test
exec build/release/tools/ringmx serve -c config/ringmx.example.toml
