#!/usr/bin/env bash
# Sets up everything (packages, PySpark, a Release build), then runs the main job:
# scripts/demo.py (--duration, --rate, --partitions; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export LBP_WITH_SPARK=1
BUILD_DIR=$(scripts/setup.sh Release)
exec python3 scripts/demo.py --build-dir "$PWD/$BUILD_DIR" "$@"
