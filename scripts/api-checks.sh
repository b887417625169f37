#!/usr/bin/env bash
# The public APIs against their ecosystems' conventions, and against breaking changes:
#
#   1. `buf lint` (STANDARD rules) over proto/;
#   2. the OpenAPI document (`diandan openapi`) linted by Redocly (recommended rules + ours,
#      services/gateway/redocly.yaml) and equal to the committed snapshot services/gateway/openapi.json;
#   3. `buf breaking` (wire and JSON) and scripts/openapi-breaking.py against the last commit
#      before HEAD that changed proto/ or the snapshot: a removed or retyped field or endpoint
#      fails, unless HEAD's commit message declares it with an `API-Breaking: <why>` trailer;
#   4. a self-test showing both breaking checks refuse a renamed field (scratch copies).
#
#   scripts/api-checks.sh                      # everything
#   API_BASELINE=<commit> scripts/api-checks.sh
#   DIANDAN_BIN=target/release/diandan scripts/api-checks.sh
#
# Tools come from the npm registry (@bufbuild/buf, @redocly/cli, versions pinned below) into
# target/api-tools; Node.js from Debian when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
REDOCLY_VERSION=2.77.0
TOOLS=target/api-tools

log() { echo "api-checks: $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  log "installing Node.js and npm (Debian)"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$TOOLS/node_modules/.bin/buf" ] || [ ! -x "$TOOLS/node_modules/.bin/redocly" ] ||
  ! grep -q "\"version\": \"$BUF_VERSION\"" "$TOOLS/node_modules/@bufbuild/buf/package.json" 2>/dev/null; then
  log "installing @bufbuild/buf@$BUF_VERSION and @redocly/cli@$REDOCLY_VERSION into $TOOLS"
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" \
    "@bufbuild/buf@$BUF_VERSION" "@redocly/cli@$REDOCLY_VERSION" >/dev/null
fi
buf="$PWD/$TOOLS/node_modules/.bin/buf"
redocly="$PWD/$TOOLS/node_modules/.bin/redocly"

if [ -z "${DIANDAN_BIN:-}" ]; then
  cargo build --quiet -p diandan --bin diandan
  DIANDAN_BIN=target/debug/diandan
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# 1. Protobuf style.
(cd proto && "$buf" lint)
log "buf lint: clean"

# 2. OpenAPI lint, and the committed snapshot is current.
"$DIANDAN_BIN" openapi >"$scratch/openapi.json"
"$redocly" lint --config services/gateway/redocly.yaml "$scratch/openapi.json" --format=stylish 2>&1 |
  grep -v -e "Deprecation warning" -e "Node.js" -e "║" -e "╔" -e "╚" || true
"$redocly" lint --config services/gateway/redocly.yaml "$scratch/openapi.json" >/dev/null 2>&1 ||
  { log "Redocly found problems (above)"; exit 1; }
log "redocly lint: clean"
if ! diff -q services/gateway/openapi.json "$scratch/openapi.json" >/dev/null; then
  log "services/gateway/openapi.json is not the document the code generates; regenerate it:"
  log "  cargo run -q -- openapi > services/gateway/openapi.json"
  exit 1
fi

# 3. Breaking changes against the baseline.
baseline="${API_BASELINE:-}"
if [ -z "$baseline" ] && git rev-parse -q --verify HEAD^ >/dev/null; then
  baseline="$(git log -1 --format=%H HEAD^ -- proto services/gateway/openapi.json)"
fi
declared="$(git log -1 --format=%B HEAD 2>/dev/null | sed -n 's/^API-Breaking: *//p')"
breaking=0
if [ -z "$baseline" ]; then
  log "no earlier commit changed the API: nothing to compare against"
else
  log "breaking-change baseline: $(git log -1 --format='%h %s' "$baseline")"
  (cd proto && "$buf" breaking --against "../.git#ref=$baseline,subdir=proto") || breaking=1
  if git cat-file -e "$baseline:services/gateway/openapi.json" 2>/dev/null; then
    git show "$baseline:services/gateway/openapi.json" >"$scratch/baseline.json"
    python3 scripts/openapi-breaking.py "$scratch/baseline.json" services/gateway/openapi.json ||
      breaking=1
  fi
fi
if [ "$breaking" -ne 0 ]; then
  if [ -n "$declared" ]; then
    log "breaking changes above are declared deliberately by HEAD: $declared"
  else
    log "breaking API change (above). If deliberate, say so in the commit message with an"
    log "'API-Breaking: <why and how clients move>' trailer, and in the README."
    exit 1
  fi
fi

# 4. Both checks can fail: a field renamed in scratch copies must be refused.
cp -r proto "$scratch/proto-before"
cp -r proto "$scratch/proto-after"
sed -i 's/string order_id = 1;/string order_ref = 1;/' "$scratch/proto-after/diandan/v1/common.proto"
if (cd "$scratch/proto-after" && "$buf" breaking --against "$scratch/proto-before" >/dev/null 2>&1); then
  log "self-test: buf breaking did not refuse a renamed field"
  exit 1
fi
python3 - "$scratch/openapi.json" "$scratch/renamed.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ack = doc["components"]["schemas"]["CommandAck"]["properties"]
ack["order_ref"] = ack.pop("order_id")
json.dump(doc, open(sys.argv[2], "w"))
PY
if python3 scripts/openapi-breaking.py "$scratch/openapi.json" "$scratch/renamed.json" >/dev/null; then
  log "self-test: openapi-breaking did not refuse a renamed field"
  exit 1
fi
log "self-test: a renamed field is refused by both breaking checks"
log "ok"
