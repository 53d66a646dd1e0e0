#!/usr/bin/env bash
# make dev: a local Cairn platform from nothing — etcd + kube-apiserver (built
# from source once), the CRDs, the manager, and the samples. Ctrl-C stops
# everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV_DIR="${CAIRN_DEV_DIR:-$PWD/.dev}"
KUBECONFIG_PATH="$DEV_DIR/kubeconfig"
METRICS_ADDR="${CAIRN_METRICS_ADDR:-127.0.0.1:8080}"
PROBE_ADDR="${CAIRN_PROBE_ADDR:-127.0.0.1:8081}"
mkdir -p "$DEV_DIR"
rm -f "$KUBECONFIG_PATH"

KUBEBUILDER_ASSETS="$(hack/setup-envtest-from-source.sh)"
export KUBEBUILDER_ASSETS

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "dev: stopping"
  # Manager first (it talks to the API server), then the control plane.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup INT TERM EXIT

go build -o bin/devcluster ./hack/devcluster
bin/devcluster --write-kubeconfig "$KUBECONFIG_PATH" &
pids+=($!)
for _ in $(seq 1 120); do
  [[ -s "$KUBECONFIG_PATH" ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "dev: control plane failed to start" >&2; exit 1; }
  sleep 0.5
done
[[ -s "$KUBECONFIG_PATH" ]] || { echo "dev: control plane did not come up in 60s" >&2; exit 1; }

bin/manager --kubeconfig "$KUBECONFIG_PATH" --metrics-secure=false \
  --xds-bind-address "${CAIRN_XDS_ADDR:-127.0.0.1:18000}" --authz-bind-address "${CAIRN_AUTHZ_ADDR:-127.0.0.1:18001}" \
  --function-host-address 127.0.0.1:8088 --authz-address "${CAIRN_AUTHZ_ADDR:-127.0.0.1:18001}" \
  --metrics-bind-address "$METRICS_ADDR" --health-probe-bind-address "$PROBE_ADDR" \
  --zap-devel >"$DEV_DIR/manager.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -fsS "http://$PROBE_ADDR/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "dev: manager exited; see $DEV_DIR/manager.log" >&2; exit 1; }
  sleep 0.5
done

bin/cairn --kubeconfig "$KUBECONFIG_PATH" apply -k config/samples

cat <<MSG

Cairn is running locally.
  export KUBECONFIG=$KUBECONFIG_PATH
  bin/cairn get cairn -A          # or: kubectl get cairn -A
  manager logs:    $DEV_DIR/manager.log
  metrics:         http://$METRICS_ADDR/metrics
  health:          http://$PROBE_ADDR/readyz
Ctrl-C stops the manager, kube-apiserver and etcd.
MSG
wait "${pids[@]}"
