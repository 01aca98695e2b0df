# integration/vm/vm.mk - "make test-vm": run Go tests inside a qemu VM that
# boots Debian's own kernel (ipvlan, 802.1q, dummy, ... are modules there).
#
# Include it from the top-level Makefile and append packages AFTER the include:
#
#	include integration/vm/vm.mk
#	VM_TEST_PKGS += ./daemon/link/
#
# or run it alone from the repository root:
#
#	make -f integration/vm/vm.mk test-vm
#	make -f integration/vm/vm.mk test-vm VM_TEST_PKGS='./integration/vm/ ./daemon/link/' VM_TEST_RUN=TestVMKernel
#
# Every package is built with CGO_ENABLED=0 go test -c into a temporary
# directory; run.sh packs the binaries into an initramfs and runs them in
# turn (working directory: an empty temp dir, so tests must not need
# testdata/ files). Tests see UNDERLAY_VM=1 and UNDERLAY_PRIVILEGED=1.

# Directory of this file, so the fragment works whatever includes it.
VM_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

GO ?= go
VM_TEST_PKGS ?= ./integration/vm/
VM_TEST_RUN ?= TestVM|TestPrivileged
VM_TEST_ARGS ?= -test.v -test.run '$(VM_TEST_RUN)'
VM_TIMEOUT ?= 300
VM_RUN ?= $(VM_DIR)/run.sh
VM_GOFLAGS ?=

.PHONY: test-vm
test-vm:
	@set -e; \
	dir=$$(mktemp -d "$${TMPDIR:-/tmp}/underlay-vm-bin.XXXXXX"); \
	trap 'rm -rf "$$dir"' EXIT INT TERM; \
	bins=; \
	for pkg in $(VM_TEST_PKGS); do \
		name=$$(printf '%s' "$$pkg" | sed 's|^\./||; s|/*$$||; s|[/.]|_|g'); \
		[ -n "$$name" ] || name=root; \
		out="$$dir/$$name.test"; \
		[ ! -e "$$out" ] || continue; \
		echo "test-vm: building $$pkg"; \
		CGO_ENABLED=0 $(GO) test $(VM_GOFLAGS) -c -o "$$out" "$$pkg"; \
		if [ -f "$$out" ]; then bins="$$bins $$out"; \
		else echo "test-vm: $$pkg has no test files, skipped"; fi; \
	done; \
	[ -n "$$bins" ] || { echo "test-vm: nothing to run"; exit 1; }; \
	"$(VM_RUN)" --timeout $(VM_TIMEOUT) $$bins -- $(VM_TEST_ARGS)
