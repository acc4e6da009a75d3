#!/usr/bin/env bash
# Installs Debian's headless-capable `chromium` for the HTML report test (tests/analysis/test_report.py),
# only when it is missing AND we are root with apt-get available; otherwise does nothing (the test
# then skips with a message). Idempotent: a second run finds chromium and returns at once.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: chromium not found and cannot install it (needs root and apt-get);" \
       "the HTML screenshot test will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "ensure_chromium: installed $(chromium --version 2>/dev/null || echo chromium)" >&2
