#!/usr/bin/env bash
# Writes docs/man/intercom-backfill.1 from the commands' own help, with swift-argument-parser's
# generate-manual tool (the tool behind its `generate-manual` plugin; the plugin itself,
# `swift package plugin generate-manual`, makes the same page but builds the package in release
# first, which is slow). Run it after changing an option, and commit the page.
#   MAN_DATE=2026-12-01 scripts/generate-manual.sh   (default: today)
set -euo pipefail
cd "$(dirname "$0")/.."
date=${MAN_DATE:-$(date +%F)}
swift build --product intercom-backfill
swift build --product generate-manual
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/generate-manual" "$bin/intercom-backfill" --date "$date" --section 1 \
  --authors "the intercom-backfill contributors" --output-directory "$work"
install -d docs/man
# A blank line in a help text is a paragraph break in mdoc (.Pp), not an empty input line.
sed 's/^$/.Pp/' "$work/intercom-backfill.1" > docs/man/intercom-backfill.1
echo "wrote docs/man/intercom-backfill.1 (read it with: man -l docs/man/intercom-backfill.1)"
