#!/bin/sh
# The behaviour check run after every hot-path change: the Swift dry run on fixtures/sample must be
# byte-identical to the reference mapper's exact-numbers output. Needs a release build
# (swift build -c release), or another binary of the tool in BINARY (e.g. the static build's).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${BINARY:-$root/.build/release/intercom-backfill}
[ -x "$binary" ] || { echo "no binary at $binary: run swift build -c release first, or set BINARY" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$binary" "$root/fixtures/sample" --dry-run --out "$tmp/swift.ndjson" --no-progress --quiet --state-dir "$tmp/state" || test $? -eq 1  # 1: some records were rejected (the sample has some)
python3 "$root/bench/reference_mapper.py" "$root/fixtures/sample" --exact-numbers > "$tmp/python.ndjson" || test $? -eq 1  # the same exit code
cmp "$tmp/swift.ndjson" "$tmp/python.ndjson"
echo "sample dry run identical to the reference ($(wc -l < "$tmp/swift.ndjson") request lines)"
