#!/usr/bin/env bash
# The full test suite, as CI runs it: unit tests, fuzz seeds and end-to-end
# tests against real nodes. Builds the binary once. Usage (as root): hack/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the end-to-end tests run a real node"; exit 1; }
source hack/deps.sh
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -trimpath"
source hack/kubectl.sh
make build
unformatted=$(gofmt -l cmd internal test bench 2>/dev/null || true)
[ -z "$unformatted" ] || { echo "gofmt needed: $unformatted"; exit 1; }
go vet ./...
KUBESEED_BIN="$PWD/bin/kubeseed" go test -count=1 -timeout 40m ./...
