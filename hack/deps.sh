#!/usr/bin/env bash
# Installs the Debian packages kubeseed and its tests need, only if missing.
set -euo pipefail
need=()
for pkg in make curl ca-certificates iproute2 openssl git runc containernetworking-plugins iptables busybox-static; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
	echo "installing: ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { echo "Go 1.26 is required (expected at /usr/local/go)"; exit 1; }
