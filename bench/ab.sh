#!/usr/bin/env bash
# A/B of the daemon at git ref REF (A) against this checkout's working tree (B): makes a temporary
# worktree of REF, links this checkout's node_modules into it, runs bench/ab.ts (which starts the two
# daemons alternately under the same measurements and prints medians, spreads and B/A ratios), and
# removes the worktree. Other options go to bench/ab.ts (--rounds, --seconds, --rate,
# --scan-samples, --scans, --recomputes). docs/performance.md, "A/B against an earlier version".
#
#   bench/ab.sh [REF] [bench/ab.ts options]    REF defaults to 9bcdf15, the parent of the first
#                                              store/engine split (82292bb)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
REF="9bcdf15"
if [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; then
  REF="$1"
  shift
fi
SHA="$(git rev-parse --verify "${REF}^{commit}")"
TMP="$(mktemp -d -t motive-ab-XXXXXX)"
cleanup() {
  git worktree remove --force "$TMP/a" >/dev/null 2>&1 || true
  rm -rf "$TMP"
  git worktree prune
}
trap cleanup EXIT
git worktree add --detach --quiet "$TMP/a" "$SHA"
ln -s "$(readlink -f "$ROOT/node_modules")" "$TMP/a/node_modules"
echo "A: $REF ($SHA) in $TMP/a; B: $ROOT ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- daemon || echo ', daemon/ modified'))"
node --import tsx bench/ab.ts --a-root "$TMP/a/" --b-root "$ROOT/" "$@"
