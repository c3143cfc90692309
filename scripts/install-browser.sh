#!/bin/sh
# Installs what the browser tests need: Debian's chromium (driven by playwright-core, which ships
# no browser of its own here) and the fonts it renders the terminal with.
#   sh scripts/install-browser.sh
set -eu
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
