#!/usr/bin/env bash
# Regenerates motive_hooks/_proto/motive_pb2.py from schemas/motive.proto with protoc (>= 3.19).
# Usage: trainer-hooks/python/gen_proto.sh [OUT_DIR]   (default: motive_hooks/_proto next to this script)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
schemas="$(cd "$here/../../schemas" && pwd)"
out="${1:-$here/motive_hooks/_proto}"
if ! command -v protoc >/dev/null 2>&1; then
  echo "gen_proto.sh: protoc not found (Debian: apt-get install protobuf-compiler)" >&2
  exit 1
fi
mkdir -p "$out"
protoc --proto_path="$schemas" --python_out="$out" "$schemas/motive.proto"
