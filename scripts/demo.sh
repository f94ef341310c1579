#!/usr/bin/env bash
# Sets up everything, then runs the main job (scripts/demo.py; see --help for options).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=$(scripts/setup.sh Release)
exec python3 scripts/demo.py --build-dir "$PWD/$BUILD_DIR" "$@"
