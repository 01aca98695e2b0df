# underlay: see README.md. `make demo` and `make test` install what they need.
# Go lives in /usr/local/go on these machines; a login shell may not have
# it on PATH.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
PREFIX  ?= /usr/local
# CNI plugins live here; underlay-cni is installed as "underlay".
CNI_BIN_DIR ?= /opt/cni/bin
BIN     := $(CURDIR)/bin
export CGO_ENABLED ?= 0
# underlay_build_info carries these (daemon/metrics).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/underlay/underlay/daemon/metrics.Version=$(VERSION) -X github.com/underlay/underlay/daemon/metrics.Revision=$(REVISION)
GOFLAGS_BUILD := -trimpath -ldflags '$(LDFLAGS)'

# Debian packages the tests and the demo use.
TEST_PKGS := containerd runc podman prometheus busybox-static iproute2 iputils-ping qemu-system-x86 xz-utils etcd-server etcd-client containernetworking-plugins dnsmasq-base kea-dhcp4-server kea-dhcp6-server radvd
DEMO_PKGS := containerd runc busybox-static iproute2

.PHONY: all build install demo test test-unit test-privileged test-multihost test-runtime test-vm bench deps fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/underlayd ./daemon
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/underlay ./daemon/cli
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/underlay-hook ./hook
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/underlay-runc ./hook/runc
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/underlay-cni ./cni

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN)/underlayd $(BIN)/underlay $(BIN)/underlay-hook $(BIN)/underlay-runc $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(CNI_BIN_DIR)
	install -m 0755 $(BIN)/underlay-cni $(DESTDIR)$(CNI_BIN_DIR)/underlay

demo: build
	BIN=$(BIN) bash integration/scripts/demo.sh

# deps installs the Debian packages and Go modules the tests need.
deps:
	@missing=""; for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 $$missing; \
	fi
	$(GO) mod download

test: deps build test-unit test-privileged test-runtime test-vm

# Short fuzz runs are bounded by a count, not a duration: a duration ends
# with a race in Go's fuzz coordinator (go.dev/issue/75804, fixed in Go
# 1.27) that fails a run with "context deadline exceeded" and no crasher.
test-unit:
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run XXX -fuzz FuzzAllocator -fuzztime 25000x ./ipam/
	$(GO) test -count=1 -run XXX -fuzz FuzzParseAnnotations -fuzztime 100000x ./daemon/api/
	$(GO) test -count=1 -run XXX -fuzz FuzzWireState -fuzztime 100000x ./daemon/api/
	$(GO) test -count=1 -run XXX -fuzz FuzzWireCNI -fuzztime 100000x ./daemon/api/
	$(GO) test -count=1 -run XXX -fuzz FuzzAddr -fuzztime 100000x ./daemon/api/
	$(GO) test -count=1 -run XXX -fuzz FuzzOutput -fuzztime 20000x ./cni/
	$(GO) test -count=1 -run XXX -fuzz FuzzAPIDecode -fuzztime 100000x ./daemon/server/
	$(GO) test -count=1 -run XXX -fuzz FuzzEndpointRecord -fuzztime 100000x ./daemon/store/

test-privileged: build
	UNDERLAY_PRIVILEGED=1 UNDERLAY_BIN=$(BIN) $(GO) test -count=1 -v -run 'TestPrivileged' ./daemon/... ./hook/... ./integration/host/... ./integration/multihost/... ./integration/dhcp/... ./integration/cni/... ./integration/cri/...
	# Attaches to one network run in parallel: their locking again, with -race.
	CGO_ENABLED=1 UNDERLAY_PRIVILEGED=1 UNDERLAY_BIN=$(BIN) $(GO) test -race -count=1 -run 'TestPrivileged(Parallel|Concurrent)' ./daemon/network/
	UNDERLAY_PRIVILEGED=1 UNDERLAY_BIN=$(BIN) $(GO) test -count=1 -v -timeout 20m ./integration/lifecycle/

# The multi-host tests alone (make test-privileged runs them too, at the
# same sizes): hosts in namespaces on one LAN, real etcd members.
test-multihost: build
	UNDERLAY_PRIVILEGED=1 UNDERLAY_BIN=$(BIN) $(GO) test -count=1 -v -timeout 10m ./integration/multihost/...

test-runtime: build
	UNDERLAY_PRIVILEGED=1 UNDERLAY_BIN=$(BIN) $(GO) test -count=1 -v -timeout 15m -run 'TestRuntime' ./integration/runtime/...
	UNDERLAY_PRIVILEGED=1 UNDERLAY_BIN=$(BIN) $(GO) test -count=1 -v -timeout 20m ./integration/nerdctl/

# bench prints attach/detach/IPAM/footprint figures beside CNI macvlan +
# host-local and netavark (integration/bench/README.md); no test is timed.
bench: build
	BIN=$(BIN) bash integration/bench/run.sh

fuzz:
	$(GO) test -run XXX -fuzz FuzzAllocator -fuzztime 5m ./ipam/
	$(GO) test -run XXX -fuzz FuzzParseAnnotations -fuzztime 5m ./daemon/api/
	$(GO) test -run XXX -fuzz FuzzWireState -fuzztime 5m ./daemon/api/
	$(GO) test -run XXX -fuzz FuzzWireEncode -fuzztime 5m ./daemon/api/
	$(GO) test -run XXX -fuzz FuzzAPIDecode -fuzztime 5m ./daemon/server/
	$(GO) test -run XXX -fuzz FuzzEndpointRecord -fuzztime 5m ./daemon/store/

clean:
	rm -rf $(BIN)

include integration/vm/vm.mk
# In the VM: the kernel smoke test, then the tests of every driver and mode
# on a kernel that has ipvlan, 802.1q and dummy, and the interface's
# create on Debian's own kernel, which looks a new link's name and index up
# in underlayd's namespace. The rest of the privileged tests run on the
# host (make test-privileged), where they are faster.
VM_TEST_PKGS += ./integration/host/ ./daemon/network/ ./integration/dhcp/ ./integration/cni/ ./daemon/link/
VM_TEST_RUN = TestVM|TestPrivileged(FinalName|IndexHint|DevConf|LookupParent|ProcSys|Strip|MacvlanModes|PassthruOneEndpoint|MissingKernelFeature|SeedPubNet|SeedDualStack|IPv4OnlyHasNoIPv6|Announce|DHCPIpvlan|DHCPLeaseAndRelease|Shim|CNIVLAN)
test-vm: build
test-vm: export UNDERLAY_VM_BIN := $(BIN)
