#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian packages (chromium for browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

echo "== installing starmodel with its test and dev extras, and the example plugin"
python -m pip install -q --disable-pip-version-check -e ".[dev]" -e examples/starmodel-jsonfile

if [ ! -f .assets/datastar.js ]; then
  echo "== fetching page assets from registry packages (Datastar client, theme files, compiled Tailwind CSS)"
  starmodel assets --dir .assets
else
  # Every run: the compiled CSS must hold the classes the sources use now (about 3 s).
  echo "== compiling the Tailwind CSS of the app's classes (.assets/tailwind/app.css)"
  starmodel assets --dir .assets --css-only || echo "   (going on without a fresh compiled CSS)"
fi

echo "== running the tests"
export STARMODEL_ASSETS_DIR="$PWD/.assets"
exec python -m pytest "$@"
