#!/usr/bin/env bash
# Writes docs/man/intercom-backfill.1 with swift-argument-parser's generate-manual plugin, from
# the commands' own help. Run it after changing an option, and commit the page.
#   MAN_DATE=2026-12-01 scripts/generate-manual.sh   (default: today)
set -euo pipefail
cd "$(dirname "$0")/.."
date=${MAN_DATE:-$(date +%F)}
swift package plugin generate-manual --date "$date" --section 1 \
  --authors "the intercom-backfill contributors" intercom-backfill
page=$(find .build/plugins/GenerateManual/outputs -name intercom-backfill.1 | head -1)
[ -n "$page" ] || { echo "generate-manual wrote no intercom-backfill.1" >&2; exit 1; }
install -d docs/man
cp "$page" docs/man/intercom-backfill.1
echo "wrote docs/man/intercom-backfill.1 (view it with: man -l docs/man/intercom-backfill.1)"
