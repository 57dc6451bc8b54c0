# The kernel lab (scripts/vmlab/README.md); included from the Makefile.
#
#   make vmlab-setup              install QEMU etc., fetch and unpack the kernel
#   make vmtest                   the tests that need real IPVS, in the guest
#   make vmshell                  an interactive root shell in the guest
#   make vmrun CMD='ipvsadm -Ln'  one command in the guest

# Packages whose tests run in the guest: those that need the kernel's IPVS,
# and the eBPF ones, to prove the programs load on Debian's 6.1 kernel too.
VMTEST_PKGS ?= ./scripts/vmlab/selftest/... ./internal/ipvs/... ./internal/e2e/... \
	./internal/loader/... ./internal/prober/synprobe/...
# The e2e package alone took 16 min of guest time at host load 23 (its
# fault tests 9 min): past go test's 10 min default; the lab's 20 min too
# on a slower host.
VMTEST_FLAGS ?= -count=1 -timeout 45m
VMLAB_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
GO ?= go

.PHONY: vmlab-setup vmtest vmshell vmrun

vmlab-setup:
	$(VMLAB_DIR)setup

vmtest: vmlab-setup build
	LVSPROBE_VMLAB_TIMEOUT=$${LVSPROBE_VMLAB_TIMEOUT:-2700} LVSPROBE_STRICT=1 LVSPROBE_REQUIRE_IPVS=1 LVSPROBE_BIN=$(abspath $(BIN)) $(GO) test $(VMTEST_FLAGS) -exec "$(abspath $(VMLAB_DIR)../vmtest)" $(VMTEST_PKGS)

vmshell: vmlab-setup
	$(VMLAB_DIR)run --shell

vmrun: vmlab-setup
	$(VMLAB_DIR)run sh -c '$(CMD)'
