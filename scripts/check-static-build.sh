#!/usr/bin/env bash
# The install recipe, checked: builds the release binary with the Swift runtime linked in
# (--static-swift-stdlib), installs it into a scratch prefix, shows what it still links
# dynamically, fails if that includes a Swift library, and runs it on the sample with a bare
# environment (no Swift toolchain on PATH, empty LD_LIBRARY_PATH).
#
#   scripts/check-static-build.sh               # build (slow the first time: 15-50 min on 2 cores), then check
#   scripts/check-static-build.sh --skip-build  # check the binary already built
# SCRATCH_PATH (default .build-release) is the build folder, kept apart from the debug build's.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${SCRATCH_PATH:-.build-release}

if [ "${1:-}" != "--skip-build" ]; then
  swift build -c release --static-swift-stdlib --scratch-path "$scratch"
fi
binary="$scratch/release/intercom-backfill"
[ -x "$binary" ] || { echo "no binary at $binary: run without --skip-build" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
install -d "$prefix/bin"
install -m 0755 "$binary" "$prefix/bin/intercom-backfill"
installed="$prefix/bin/intercom-backfill"

echo "binary: $(du -h "$installed" | cut -f1) ($(stat -c %s "$installed") bytes)"
echo "dynamic libraries (ldd):"
ldd "$installed" | sed 's/^/  /'
if ldd "$installed" | grep -Ei 'swift|foundation|dispatch|BlocksRuntime|icu'; then
  echo "FAIL: the binary links the Swift runtime dynamically" >&2
  exit 1
fi

# A bare environment: what cron or systemd gives a job on a machine without Swift.
set +e
env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH= HOME="$work" "$installed" fixtures/sample --dry-run --no-progress \
  --out "$work/requests.ndjson" --state-dir "$work/state" --report "$work/report.json" 2> "$work/stderr"
status=$?
set -e
cat "$work/stderr"
# The sample holds rejected records on purpose: a clean dry run of it exits 1.
if [ "$status" -ne 1 ]; then echo "FAIL: exit $status, expected 1 (the sample has rejects)" >&2; exit 1; fi
# The report is pretty-printed JSON ("records" : 3971).
grep -Eq '"records" *: *3971,' "$work/report.json" || { echo "FAIL: the report does not count the sample's 3971 records" >&2; exit 1; }
requests=$(wc -l < "$work/requests.ndjson")
[ "$requests" -gt 0 ] || { echo "FAIL: no request lines" >&2; exit 1; }
env -i PATH=/usr/bin:/bin "$installed" --version | head -1
echo "OK: the static binary ran on the sample without the Swift toolchain ($requests request lines)"
