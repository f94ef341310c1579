#!/usr/bin/env bash
# One command: builds (Release), then runs the COPY benchmark (proxy client vs psql \copy).
# Usage: bench/copy.sh [--quick] [--rows N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=$(scripts/setup.sh Release)
exec python3 bench/copy_bench.py --build-dir "$BUILD_DIR" "$@"
