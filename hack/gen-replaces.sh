#!/usr/bin/env bash
# Prints the replace block that pins k8s.io/kubernetes's staging modules
# (required upstream at v0.0.0) to the matching published v0.X.Y tags.
# Usage: hack/gen-replaces.sh v1.37.2 > /tmp/replaces && edit go.mod
set -euo pipefail
ver=${1:?usage: gen-replaces.sh vMAJOR.MINOR.PATCH}
staging=v0.${ver#v1.}
mod=$(go mod download -json "k8s.io/kubernetes@${ver}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
echo "replace ("
sed -n '/^replace/,/^)/p' "$mod" | awk '/=>/{print $1}' | while read -r m; do
	# Modules named only in upstream's replace block are not needed.
	grep -q "^[[:space:]]${m} v0.0.0" "$mod" || continue
	printf '\t%s => %s %s\n' "$m" "$m" "$staging"
done
echo ")"
