#!/usr/bin/env bash
# Runs the Python hook's test suite (trainer-hooks/python/tests) with Debian's Python.
# Without torch / grpcio / numpy / pytest it skips (exit 0) naming the Debian package to install;
# with CI=true a missing package is a failure (exit 1). "No tests collected" is a failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-/usr/bin/python3}"
missing=()
for pair in torch:python3-torch grpc:python3-grpcio numpy:python3-numpy pytest:python3-pytest google.protobuf:python3-protobuf; do
  mod="${pair%%:*}"
  pkg="${pair##*:}"
  if ! "$PY" -c "import $mod" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "test-python: missing Debian package(s): ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "test-python: SKIPPED, missing Debian package(s): ${missing[*]} (apt-get install ${missing[*]})"
  exit 0
fi
"$PY" -m pytest -q trainer-hooks/python/tests "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test-python: no tests were collected" >&2
  exit 1
fi
exit "$rc"
