#!/usr/bin/env bash
# Installs what is needed, builds ringmx (release) and starts it in the foreground with the bundled
# example config: SMTP on 127.0.0.1:2525, spool in ./run/spool, control socket ./run/control.sock.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j "$(nproc)" --target ringmx
mkdir -p run
exec build/release/tools/ringmx serve -c config/ringmx.example.toml
