#!/usr/bin/env bash
# The studio's browser tests drive a real Chromium (Debian's `chromium` package) with Playwright.
# `make test` runs this first: it installs Chromium when it is missing and apt-get can (root or sudo);
# otherwise it says how, and the browser tests skip with that reason.
set -u
for exe in chromium chromium-browser google-chrome; do
  if command -v "$exe" >/dev/null 2>&1; then exit 0; fi
done
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "install-chromium: not root and no sudo; run 'sudo apt-get install chromium' for the browser tests" >&2; exit 0
    fi
  fi
  echo "install-chromium: installing Debian's chromium package for the studio's browser tests" >&2
  $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "install-chromium: apt-get could not install chromium; the browser tests will skip" >&2
else
  echo "install-chromium: no apt-get here; install Chromium for the browser tests" >&2
fi
exit 0
