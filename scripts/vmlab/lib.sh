# shellcheck shell=bash
# Shared settings and helpers of the kernel lab; sourced by setup, run and
# shell. Every knob is an environment variable documented in README.md.

VMLAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VMLAB_DIR/../.." && pwd)
CACHE=${LVSPROBE_VMLAB_CACHE:-$REPO/.cache/vmlab}

# Host packages the lab itself needs (qemu, the initramfs's busybox, xz to
# cut vmlinux out of vmlinuz) and those the guest uses through the shared
# /usr (ipvsadm, keepalived, nginx, ip).
# shellcheck disable=SC2034 # used by the scripts that source this
VMLAB_PKGS=(qemu-system-x86 busybox-static xz-utils ipvsadm keepalived nginx-light iproute2)

# Modules the initramfs carries and loads before the root exists (their
# dependencies, netfs and fscache among them, come along through
# modules.dep): what the root needs, then what every test needs (IPVS and
# veth), loaded from memory rather than over 9p.
# libcrc32c (for ip_vs) asks the crypto API for crc32c: crc32c_generic.
# shellcheck disable=SC2034 # used by the scripts that source this
VMLAB_EARLY_MODULES=(virtio_pci 9pnet_virtio 9p overlay virtio_console crc32c_generic ip_vs veth)

die() {
	echo "vmlab: error: $*" >&2
	exit 125
}

note() {
	[[ ${LVSPROBE_VMLAB_QUIET:-} == 1 ]] || echo "vmlab: $*" >&2
}

# positive_int NAME VALUE: VALUE must be a positive integer.
positive_int() {
	[[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"
}

# kernel_dir KVER: where the unpacked kernel, its vmlinux and initramfs live.
kernel_dir() {
	echo "$CACHE/kernels/$1"
}
