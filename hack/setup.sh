#!/usr/bin/env bash
# One command: install what is needed, build kubeseed, and run a node in the
# background. Usage (as root): hack/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo hack/setup.sh"; exit 1; }
source hack/deps.sh
echo "building kubeseed (the first build compiles Kubernetes: 10-20 minutes on 2 cores)..."
make build
install -m 0755 bin/kubeseed /usr/local/bin/kubeseed
log=/var/log/kubeseed.log
if kubeseed status >/dev/null 2>&1; then
	echo "a node is already running"
else
	echo "starting the node; log in $log"
	nohup kubeseed start >>"$log" 2>&1 &
fi
kubeseed status --wait-ready --timeout 5m
echo
echo "Ready. Try: kubeseed kubectl get namespaces"
