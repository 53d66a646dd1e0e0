#!/usr/bin/env bash
# hack/kind-e2e.sh — Cairn end to end with a real Envoy, in a kind cluster.
#
# UNTESTED HERE: this script needs Docker, kind, kubectl and curl. The
# machine Cairn is developed on has none of them (and cannot install Envoy),
# so the script has been written and reviewed but never run there, and CI
# does not run it. The same wiring is checked offline by
# `go test ./internal/cli -run TestEnvoyKustomization` (kustomize build of
# config/envoy) and the xDS server's tests against grpc-go's xDS client.
#
# What it does:
#   1. creates a kind cluster (or reuses one of the same name);
#   2. builds the manager image from hack/Dockerfile.manager and loads it;
#   3. applies config/default (CRDs, RBAC, manager) and config/envoy (an
#      Envoy Deployment for gateway "public");
#   4. deploys an http-echo backend and a Route to it on gateway "public";
#   5. waits for the Route's Programmed=True (Envoy acknowledged it);
#   6. curls through the Envoy Service (kubectl port-forward) and checks the
#      answer; a request for an unknown host must get Envoy's 404;
#   7. deletes the cluster it created, unless --keep is given.
#
# Usage: hack/kind-e2e.sh [--keep] [--name NAME]
# Environment: KIND_NODE_IMAGE (kind's default if unset), LOCAL_PORT (18080),
# TIMEOUT for each wait (180s).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=cairn-e2e
KEEP=false
LOCAL_PORT="${LOCAL_PORT:-18080}"
TIMEOUT="${TIMEOUT:-180s}"
IMAGE=cairn-manager:e2e
NS_APP=cairn-e2e
NS_GATEWAY=cairn-gateway
HOSTNAME_OK=echo.example.test
ECHO_TEXT="hello from cairn"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) KEEP=true ;;
    --name) CLUSTER="${2:?--name needs a value}"; shift ;;
    --name=*) CLUSTER="${1#--name=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kind-e2e: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "kind-e2e: FAIL: $*" >&2; exit 1; }

for tool in docker kind kubectl curl; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is required and not on PATH"
done
docker info >/dev/null 2>&1 || fail "cannot reach the Docker daemon (is it running, may you use it?)"

CONTEXT="kind-$CLUSTER"
k() { kubectl --context "$CONTEXT" "$@"; }

created=false
pf_pid=""
WORK="$(mktemp -d)"
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$pf_pid" ]]; then kill "$pf_pid" 2>/dev/null || true; wait "$pf_pid" 2>/dev/null || true; fi
  if [[ $rc -ne 0 ]] && kubectl config get-contexts "$CONTEXT" >/dev/null 2>&1; then
    echo
    echo "---- diagnostics (exit code $rc) ----"
    k get pods -A -o wide || true
    echo "---- Route $NS_APP/echo conditions ----"
    k -n "$NS_APP" get route.gateway.cairn.dev/echo \
      -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}' 2>/dev/null || true
    echo "---- manager logs (tail) ----"
    k -n cairn-system logs deployment/cairn-manager --tail=60 2>/dev/null || true
    echo "---- envoy logs (tail) ----"
    k -n "$NS_GATEWAY" logs deployment/envoy-public --tail=60 2>/dev/null || true
    [[ -s "$WORK/port-forward.log" ]] && { echo "---- port-forward ----"; cat "$WORK/port-forward.log"; }
  fi
  if $created && ! $KEEP; then
    step "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" || true
  elif kubectl config get-contexts "$CONTEXT" >/dev/null 2>&1; then
    echo
    echo "kind-e2e: cluster $CLUSTER kept (kubectl --context $CONTEXT …; kind delete cluster --name $CLUSTER)"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Cluster.
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  step "reusing kind cluster $CLUSTER (it will not be deleted)"
else
  step "creating kind cluster $CLUSTER"
  created=true
  kind create cluster --name "$CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
fi

# 2. Manager image. The tag is not "latest", so the pull policy is
# IfNotPresent and the loaded image is used.
step "building $IMAGE (hack/Dockerfile.manager)"
docker build -f hack/Dockerfile.manager -t "$IMAGE" \
  --build-arg VERSION="$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
  --build-arg COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --build-arg DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

# 3. Control plane. config/default names the published image; swap in ours.
step "applying config/default with image $IMAGE"
k kustomize config/default >"$WORK/default.yaml"
grep -q 'image: ghcr.io/cairn-platform/cairn-manager:latest' "$WORK/default.yaml" ||
  fail "config/default no longer uses image ghcr.io/cairn-platform/cairn-manager:latest; update this script"
sed -i.bak "s#image: ghcr.io/cairn-platform/cairn-manager:latest#image: $IMAGE#" "$WORK/default.yaml"
k apply --server-side --force-conflicts -f "$WORK/default.yaml"
k wait --for=condition=Established --timeout="$TIMEOUT" crd/routes.gateway.cairn.dev

# Envoy's bootstrap (config/envoy) dials this Service.
k -n cairn-system get service cairn-xds >/dev/null ||
  fail "config/default has no Service cairn-system/cairn-xds, which the Envoy bootstrap dials"
step "waiting for the manager"
k -n cairn-system rollout status deployment/cairn-manager --timeout="$TIMEOUT"

# 4. Envoy for gateway "public".
step "applying config/envoy (gateway public)"
k apply --server-side -k config/envoy
k -n "$NS_GATEWAY" rollout status deployment/envoy-public --timeout="$TIMEOUT"

# 5. Backend and Route.
step "deploying the echo backend and Route $NS_APP/echo"
k apply --server-side -f - <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $NS_APP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: $NS_APP
spec:
  replicas: 1
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: echo
        image: hashicorp/http-echo:1.0
        args: ["-listen=:5678", "-text=$ECHO_TEXT"]
        ports:
        - {name: http, containerPort: 5678}
        readinessProbe:
          httpGet: {path: /, port: http}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: ["ALL"]}
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: $NS_APP
spec:
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: http}
EOF
k -n "$NS_APP" rollout status deployment/echo --timeout="$TIMEOUT"

k apply --server-side -f - <<EOF
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata:
  name: echo
  namespace: $NS_APP
spec:
  gatewayRef:
    name: public
  hostnames: ["$HOSTNAME_OK"]
  rules:
  - name: all
    matches:
    - path: {type: PathPrefix, value: /}
    backends:
    - service: {name: echo, port: 80}
EOF

# 6. Programmed: the Envoys of gateway "public" acknowledged the Route.
step "waiting for Route $NS_APP/echo: Accepted, then Programmed"
k -n "$NS_APP" wait --for=condition=Accepted --timeout="$TIMEOUT" route.gateway.cairn.dev/echo
k -n "$NS_APP" wait --for=condition=Programmed --timeout="$TIMEOUT" route.gateway.cairn.dev/echo
k -n "$NS_APP" get route.gateway.cairn.dev/echo \
  -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'

# 7. Traffic through Envoy.
step "curling through service/envoy-public (port-forward 127.0.0.1:$LOCAL_PORT -> 80)"
k -n "$NS_GATEWAY" port-forward service/envoy-public "$LOCAL_PORT:80" >"$WORK/port-forward.log" 2>&1 &
pf_pid=$!
for _ in $(seq 1 30); do
  grep -q "Forwarding from" "$WORK/port-forward.log" 2>/dev/null && break
  kill -0 "$pf_pid" 2>/dev/null || fail "kubectl port-forward exited"
  sleep 1
done

# The listener may take a moment after the ACK: retry briefly.
body=""
for _ in $(seq 1 15); do
  body="$(curl -sS --max-time 5 -H "Host: $HOSTNAME_OK" "http://127.0.0.1:$LOCAL_PORT/" 2>/dev/null || true)"
  [[ "$body" == *"$ECHO_TEXT"* ]] && break
  sleep 1
done
[[ "$body" == *"$ECHO_TEXT"* ]] || fail "GET http://$HOSTNAME_OK/ through Envoy answered '$body', want '$ECHO_TEXT'"
echo "GET http://$HOSTNAME_OK/ -> $body"

code="$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H 'Host: unknown.example.test' "http://127.0.0.1:$LOCAL_PORT/" || true)"
[[ "$code" == 404 ]] || fail "GET http://unknown.example.test/ answered $code, want 404 (no route)"
echo "GET http://unknown.example.test/ -> $code"

step "PASS: Route $NS_APP/echo programmed on gateway public and served by Envoy"
