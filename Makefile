# kubeseed build, test and benchmark entry points.
SHELL       := /bin/bash
export GOTOOLCHAIN := local
export GOFLAGS     := -buildvcs=false -trimpath

K8S_VERSION ?= v1.37.2
K8S_MAJOR   := 1
K8S_MINOR   := 37
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BIN         ?= bin/kubeseed

define stamp
-X $(1).gitVersion=$(K8S_VERSION) -X $(1).gitMajor=$(K8S_MAJOR) -X $(1).gitMinor=$(K8S_MINOR) -X $(1).gitTreeState=clean -X $(1).buildDate=$(BUILD_DATE)
endef
CONTAINERD_VERSION := $(shell go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
LDFLAGS := -s -w -X main.version=$(VERSION) \
	-X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION) \
	$(call stamp,k8s.io/component-base/version) \
	$(call stamp,k8s.io/client-go/pkg/version)

.PHONY: build embedded test unit e2e lint bench deps clean

EMBED := internal/embedded/bin

build: embedded
	go build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubeseed

# Small static helpers packed into kubeseed: the pause program and
# containerd's runc shim (one per pod, so it must stay small).
embedded:
	CGO_ENABLED=0 go build -ldflags '-s -w' -o $(EMBED)/pause ./cmd/kubeseed-pause
	CGO_ENABLED=0 go build -tags no_btrfs -ldflags '-s -w' -o $(EMBED)/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	CGO_ENABLED=0 go build -C build/coredns -ldflags '-s -w' -o $(abspath $(EMBED))/coredns .
	cd $(EMBED) && sha256sum pause containerd-shim-runc-v2 coredns > SHA256SUMS

# The whole suite, as CI runs it (hack/test.sh installs what it needs).
test:
	hack/test.sh

unit:
	go test -count=1 $$(go list ./... | grep -v /test/e2e)

e2e: build
	KUBESEED_BIN=$(abspath $(BIN)) go test -count=1 -v -timeout 30m ./test/e2e/

lint:
	test -z "$$(gofmt -l cmd internal test bench)"
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: build
	KUBESEED_BIN=$(abspath $(BIN)) go run ./bench

clean:
	rm -rf bin $(EMBED)/pause $(EMBED)/containerd-shim-runc-v2 $(EMBED)/coredns $(EMBED)/SHA256SUMS
