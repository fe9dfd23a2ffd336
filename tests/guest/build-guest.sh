#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build (once) the tiny Linux guest that ttyhub's integration tests boot under QEMU.
#
# The guest is Debian's cloud kernel plus an initramfs holding only busybox-static and an /init
# that starts an interactive shell on the 16550 serial port (ttyS0) and one on the first virtio
# console (hvc0), booted in about 3 s under TCG.  Nothing is installed on the host:
# the kernel .deb is fetched with `apt-get download` and unpacked with `dpkg-deb -x`, so this
# runs as root or as an ordinary user.
#
# Cache: ${TTYHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ttyhub}/guest/
#   vmlinuz         the kernel
#   initrd.cpio     the initramfs (newc cpio, uncompressed)
#   modules/*.ko    the virtio modules taken from the kernel package
#   kernel-package  the name of the kernel package they came from
#   stamp           hash of the initramfs recipe; a different hash rebuilds initrd.cpio
#
# Output: the paths of vmlinuz and initrd.cpio on stdout, one per line, and nothing else.
# Progress and tool output go to stderr.  Concurrent runs serialise on a lock file.
#
# Environment:
#   TTYHUB_CACHE          cache root (see above)
#   TTYHUB_GUEST_REFETCH  if 1, fetch the kernel again even if one is cached
set -euo pipefail

# The virtio modules, in insmod order (their depends= strings; there is no depmod in the guest).
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console"

# The guest's /init.  PID 1 must never exit, or the kernel panics.
#  - "guest up" on ttyS0 marks the end of boot (the kernel itself is silenced with loglevel=1).
#  - Each shell runs in its own session with its tty as controlling terminal: cttyhack opens the
#    active console (ttyS0); for hvc0 the session leader opens /dev/hvc0 itself.
#  - "hvc0 up" is printed on hvc0 each time its shell starts.  Without a virtio console, the
#    hvc0 loop polls quickly for 10 s, then slowly.
#  - The hvc0 loop (/init --hvc0) is detached without "&": a non-interactive shell starts "&"
#    jobs with SIGINT and SIGQUIT ignored, and the hvc0 shell would inherit that (^C would do
#    nothing).  The outer setsid makes the inner one a session leader, so the inner one forks
#    a child into a new session and returns at once.
IFS= read -r -d '' INIT <<EOF || true
#!/bin/busybox sh
if [ "\$1" = --hvc0 ]; then
	n=0
	while [ ! -e /dev/hvc0 ]; do
		if [ \$n -lt 100 ]; then sleep 0.1; n=\$((n + 1)); else sleep 2; fi
	done
	while true; do
		setsid sh -c 'exec </dev/hvc0 >/dev/hvc0 2>&1; echo "hvc0 up"; exec sh -i'
		sleep 1
	done
fi
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ TERM=linux PS1='# '
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
echo 1 > /proc/sys/kernel/printk
echo 1 > /proc/sys/kernel/sysrq
hostname guest
for m in $MODULES; do
	insmod /lib/modules/\$m.ko || echo "init: insmod \$m failed"
done
echo "guest up"
setsid setsid /init --hvc0
while true; do
	setsid cttyhack sh -i
	sleep 1
done
EOF

log()
{
	printf 'build-guest: %s\n' "$*" >&2
}

die()
{
	log "error: $*"
	exit 1
}

cache_root=${TTYHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ttyhub}
guest=$cache_root/guest
kernel=$guest/vmlinuz
initrd=$guest/initrd.cpio
stamp=$(printf '%s\n%s\n%s\n' "recipe-1" "$MODULES" "$INIT" | sha256sum | cut -d' ' -f1)

kernel_cached()
{
	local m
	[ "${TTYHUB_GUEST_REFETCH:-0}" != 1 ] || return 1
	[ -s "$kernel" ] && [ -s "$guest/kernel-package" ] || return 1
	for m in $MODULES; do
		[ -s "$guest/modules/$m.ko" ] || return 1
	done
}

up_to_date()
{
	kernel_cached && [ -s "$initrd" ] && [ -f "$guest/stamp" ] &&
		[ "$(cat "$guest/stamp")" = "$stamp" ]
}

# Fast path: no lock, no tools beyond sha256sum.
if up_to_date; then
	printf '%s\n%s\n' "$kernel" "$initrd"
	exit 0
fi

mkdir -p "$guest"
exec 9>"$guest/.lock"
flock 9
tmp=$(mktemp -d "$guest/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

apt_download()
{
	local -a opts=()

	# As root, apt drops to the _apt user, who cannot write into our private temp dir.
	[ "$(id -u)" != 0 ] || opts=(-o APT::Sandbox::User=root)
	(cd "$tmp/deb" && apt-get "${opts[@]}" -q download "$1") >&2
}

fetch_kernel()
{
	local pkg deb moddir m f

	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-/ { print $2; exit }') || true
	if [ -z "$pkg" ]; then
		log "linux-image-cloud-amd64 unknown to apt-cache; running apt-get update"
		apt-get -q update >&2 || die "apt-get update failed (not root?)"
		pkg=$(apt-cache depends linux-image-cloud-amd64 |
			awk '/Depends: linux-image-/ { print $2; exit }')
		[ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 to a kernel package"
	fi
	log "fetching $pkg"
	mkdir -p "$tmp/deb"
	if ! apt_download "$pkg"; then
		log "apt-get download failed; running apt-get update and retrying"
		apt-get -q update >&2 || die "apt-get update failed (not root?)"
		apt_download "$pkg" || die "apt-get download $pkg failed"
	fi
	deb=$(find "$tmp/deb" -maxdepth 1 -name '*.deb' | head -n 1)
	[ -n "$deb" ] || die "apt-get download left no .deb"
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$tmp/root"

	f=$(find "$tmp/root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
	[ -n "$f" ] || die "no /boot/vmlinuz-* in $pkg"
	moddir=$(find "$tmp/root/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	[ -n "$moddir" ] || die "no /lib/modules/* in $pkg"

	rm -rf "$tmp/modules"
	mkdir -p "$tmp/modules"
	for m in $MODULES; do
		f=$(find "$moddir/kernel/drivers/virtio" "$moddir/kernel/drivers/char" \
			-name "$m.ko*" | head -n 1)
		[ -n "$f" ] || die "module $m not found in $pkg"
		case $f in
		*.ko) cp "$f" "$tmp/modules/$m.ko" ;;
		*.ko.xz) xz -dc "$f" >"$tmp/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$tmp/modules/$m.ko" ;;
		*) die "unsupported module file $f" ;;
		esac
	done

	# Install: modules first, kernel-package last (kernel_cached checks it).
	rm -f "$guest/kernel-package"
	rm -rf "$guest/modules"
	mv "$tmp/modules" "$guest/modules"
	cp "$(find "$tmp/root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)" "$tmp/vmlinuz"
	mv -f "$tmp/vmlinuz" "$kernel"
	printf '%s\n' "$pkg" >"$guest/kernel-package"
	rm -rf "$tmp/root" "$tmp/deb"
}

build_initrd()
{
	local busybox m

	busybox=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
	# A dynamically linked busybox would not run in the guest.
	if file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked'; then
		die "$busybox is dynamically linked; install busybox-static"
	fi
	log "packing initramfs"
	mkdir -p "$tmp/initrd/bin" "$tmp/initrd/lib/modules" \
		"$tmp/initrd/dev" "$tmp/initrd/proc" "$tmp/initrd/sys" \
		"$tmp/initrd/tmp" "$tmp/initrd/root"
	cp "$busybox" "$tmp/initrd/bin/busybox"
	for m in $MODULES; do
		cp "$guest/modules/$m.ko" "$tmp/initrd/lib/modules/$m.ko"
	done
	printf '%s\n' "$INIT" >"$tmp/initrd/init"
	chmod 0755 "$tmp/initrd/init" "$tmp/initrd/bin/busybox"
	(cd "$tmp/initrd" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc) \
		>"$tmp/initrd.cpio" 2>"$tmp/cpio.log" ||
		{ cat "$tmp/cpio.log" >&2; die "cpio failed"; }
	mv -f "$tmp/initrd.cpio" "$initrd"
	printf '%s\n' "$stamp" >"$guest/stamp"
}

# Another run may have finished the work while we waited for the lock.
if ! up_to_date; then
	kernel_cached || fetch_kernel
	build_initrd
	log "kernel $(cat "$guest/kernel-package"), initramfs $(du -h "$initrd" | cut -f1)"
fi
printf '%s\n%s\n' "$kernel" "$initrd"
