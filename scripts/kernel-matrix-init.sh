#!/bin/sh
# /init of the guests scripts/kernel-matrix.sh boots (busybox): reaches the host's root over 9p (read-only), gives
# the tests the writable places and kernel file systems they use, runs scripts/kernel-matrix-runner.sh there and
# powers off. The kernel command line names the repository (nodeagent.repo) and, as a host path, the extracted
# kernel's module tree (nodeagent.modules); nodeagent.runner replaces the runner (to investigate a failure).
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# kernel-matrix.sh first boots with nodeagent.probe to learn whether KVM runs this kernel.
if grep -q nodeagent.probe /proc/cmdline; then
    echo "matrix: probe ok"
    poweroff -f
fi
for module in $(cat /mods/order); do insmod "/mods/$module" || echo "matrix-log: init: insmod $module failed"; done

param() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
repo=$(param nodeagent.repo)
modules=$(param nodeagent.modules)
runner=$(param nodeagent.runner)

root=/newroot
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot "$root"; then
    echo "matrix: done status=1 (the host root did not mount)"
    poweroff -f
fi

# Modules the tests need load on demand: the kernel runs /proc/sys/kernel/modprobe in this initramfs' root (it
# stays, since the tests run in a chroot, not after switch_root), and busybox modprobe finds the extracted package's
# tree here.
mkdir -p "/lib/modules/$(uname -r)"
mount --bind "$root$modules/$(uname -r)" "/lib/modules/$(uname -r)"
echo /bin/modprobe >/proc/sys/kernel/modprobe
for module in veth sch_ingress cls_bpf; do modprobe "$module" || echo "matrix-log: init: modprobe $module failed"; done

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount -t devtmpfs dev "$root/dev"
mkdir -p "$root/dev/pts" "$root/dev/shm" 2>/dev/null
mount -t devpts devpts "$root/dev/pts"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t bpf bpf "$root/sys/fs/bpf"
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
for dir in /tmp /run /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$root$dir"; done
ip link set lo up

# An emulated guest (TCG) is several times slower: the agent's start, mostly loading the BPF object, takes
# about 13 s on 6.1 instead of the 10 s the end-to-end harness allows by default.
chroot "$root" /usr/bin/env HOME=/root NODEAGENT_AGENT_START_TIMEOUT=60 \
    /bin/sh "${runner:-$repo/scripts/kernel-matrix-runner.sh}" "$repo"
sync
poweroff -f
