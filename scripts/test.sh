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

# Every run: the files come from the user's cache once fetched (no Node), and the compiled CSS
# must hold the classes the sources use now (about a second once the Tailwind CLI is cached).
echo "== page assets into .assets (Datastar client, theme files, the Tailwind CSS of the app's classes)"
starmodel assets --dir .assets

echo "== running the tests"
export STARMODEL_ASSETS_DIR="$PWD/.assets"
exec python -m pytest "$@"
