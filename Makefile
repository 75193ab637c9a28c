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
LDFLAGS := -s -w -X main.version=$(VERSION) \
	$(call stamp,k8s.io/component-base/version) \
	$(call stamp,k8s.io/client-go/pkg/version)

.PHONY: build test unit e2e lint bench deps clean

build:
	go build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubeseed

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
	rm -rf bin
