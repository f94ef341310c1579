#!/usr/bin/env bash
# Sets up everything and runs every test: C unit and integration tests (CTest,
# under AddressSanitizer + UndefinedBehaviorSanitizer) and the Python tests
# (pytest), all against real PostgreSQL servers this script's harness starts
# and removes. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export LBP_WITH_SPARK=${LBP_WITH_SPARK-1}
export LBP_WITH_TESTS=1
BUILD_DIR=$(scripts/setup.sh Sanitize)
export LBP_BUILD_DIR="$PWD/$BUILD_DIR"
# Leak checks on, and a failing sanitizer check fails the test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Spark binds to loopback only.
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
# The Python package under test is this checkout's, for the driver and Spark's workers.
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"

status=0
echo "== Format (clang-format) =="
scripts/check-format.sh || status=1

echo "== C tests (ctest, $BUILD_DIR) =="
(cd "$BUILD_DIR" && ctest --output-on-failure -j1) || status=1

# Every libFuzzer harness for a bounded time (its grown corpus is cached outside the checkout);
# `tests/fuzz/run --minutes N` for a longer hunt.
echo "== Fuzz (libFuzzer, ${LBP_FUZZ_SECONDS:-20} s per harness) =="
tests/fuzz/run --seconds "${LBP_FUZZ_SECONDS:-20}" || status=1

echo "== Python tests (pytest) =="
pytest_dirs=(tests)
[ -d python/tests ] && pytest_dirs+=(python/tests)
python3 -m pytest -q -p no:cacheprovider "${pytest_dirs[@]}" || status=1

exit $status
