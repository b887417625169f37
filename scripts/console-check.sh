#!/usr/bin/env bash
# Rebuild the web console and fail when the committed console/dist differs from the build.
# The Rust binary embeds console/dist, so it must always be the build of console/src.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/console"

stale() {
  echo "console/dist is stale: run (cd console && npm ci && npm run build) and commit" >&2
  exit 1
}

npm ci --no-audit --no-fund
npm run build

if ! git diff --exit-code --stat -- dist; then
  stale
fi
if [ -n "$(git status --porcelain -- dist)" ]; then
  git status --porcelain -- dist >&2
  stale
fi
echo "console/dist is up to date"
