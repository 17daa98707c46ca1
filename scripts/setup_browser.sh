#!/usr/bin/env bash
# Idempotent: headless Chromium and its WebDriver from Debian, for the annotation-kit browser test
# (siscore_assets_tests/core/test_annotation_kit_browser.py).  Nothing else is downloaded: the test
# drives /usr/bin/chromedriver with selenium (a PyPI package in the dev extra), never a browser
# build of its own.  Skip on purpose with SISCORE_SKIP_BROWSER=1 (the test then skips too).
set -euo pipefail

CHROMIUM=${SISCORE_CHROMIUM:-/usr/bin/chromium}
CHROMEDRIVER=${SISCORE_CHROMEDRIVER:-/usr/bin/chromedriver}

if [ "${SISCORE_SKIP_BROWSER:-0}" = "1" ]; then
  echo "== SISCORE_SKIP_BROWSER=1: not installing Chromium (the browser test will skip)"
  exit 0
fi
if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "setup_browser: $CHROMIUM or $CHROMEDRIVER is missing and installing needs root." >&2
    echo "  run as root:  apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver" >&2
    echo "  or skip the browser test:  SISCORE_SKIP_BROWSER=1 make test" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_browser: no apt-get here; install Chromium and chromedriver yourself and set" >&2
  echo "  SISCORE_CHROMIUM / SISCORE_CHROMEDRIVER to their paths (or SISCORE_SKIP_BROWSER=1)." >&2
  exit 1
fi

echo "== installing chromium + chromium-driver from Debian (headless browser test; about a minute)"
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get update -qq && \
       "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
  echo "setup_browser: apt-get could not install chromium / chromium-driver (registry unreachable?)." >&2
  echo "  skip the browser test with SISCORE_SKIP_BROWSER=1" >&2
  exit 1
fi
"$CHROMEDRIVER" --version
