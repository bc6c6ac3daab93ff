#!/usr/bin/env bash
# Runs the kernel-dependent tests on the kernels nodeagent supports and writes KERNELS.md: Debian 12's own kernel
# (6.1) and the 6.12 kernel bookworm serves, each booted under qemu, and the running kernel, measured directly.
# Run by hand, not in CI: it downloads two kernel packages and boots two virtual machines. Needs root.
#
# Each guest boots a Debian kernel package (downloaded with apt-get, extracted with dpkg-deb under $cache) with a
# small busybox initramfs that loads the kernel's own 9p and virtio modules, mounts the host's root read-only over
# 9p, puts tmpfs on every place the tests write, and runs scripts/kernel-matrix-runner.sh from the host's root on
# the test bundle built here beforehand. The runner's `matrix:` lines come back over the serial console.
#
# Usage: scripts/kernel-matrix.sh [--skip-build] [kernel...]   kernels: 6.1 6.12 host (default: all three)
# KERNEL_MATRIX_RUNNER=<host path of a script> runs that script in the guests instead of the runner.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
cache=/var/tmp/nodeagent-kernels
build=1
if [ "${1:-}" = --skip-build ]; then
    build=0
    shift
fi
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(6.1 6.12 host)
guest_timeout=2400

if [ "$build" = 1 ]; then swift build --build-tests; fi
[ -x .build/debug/nodeagentPackageTests.xctest ] || {
    echo "no test bundle in .build/debug: run swift build --build-tests" >&2
    exit 1
}
mkdir -p "$cache/debs" "$cache/logs"

# The concrete package of a kernel series: Debian 12's linux-image-amd64 depends on the 6.1 image it ships; for
# 6.12 the newest linux-image-6.12.*+deb12-amd64 bookworm serves (backports and security updates).
package_of() {
    case "$1" in
    6.1) apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' |
        head -1 ;;
    6.12) apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | cut -d' ' -f1 | sort -V |
        tail -1 ;;
    *) return 1 ;;
    esac
}

# Downloads and extracts `package` into $cache/root-<package>, with modules decompressed (busybox's insmod and
# modprobe read plain .ko files) and modules.dep generated (the package leaves that to depmod at install time).
prepare_kernel() {
    local package=$1 root="$cache/root-$1" deb release
    if [ ! -f "$root/.ready" ]; then
        deb=$(ls "$cache/debs/${package}_"*.deb 2>/dev/null | head -1 || true)
        if [ -z "$deb" ]; then
            (cd "$cache/debs" && apt-get download "$package" >&2)
            deb=$(ls "$cache/debs/${package}_"*.deb | head -1)
        fi
        rm -rf "$root"
        mkdir -p "$root"
        dpkg-deb -x "$deb" "$root"
        find "$root/lib/modules" -name '*.ko.xz' -print0 | xargs -0 -r -n 200 xz -d
        release=$(ls "$root/lib/modules")
        busybox depmod -b "$root" "$release"
        dpkg-deb -f "$deb" Version >"$root/.version"
        touch "$root/.ready"
    fi
}

# Prints the modules `module` (a path relative to the module tree) needs, dependencies first, from modules.dep.
module_closure() {
    local dep_file=$1 module=$2 dep
    for dep in $(grep "^$module:" "$dep_file" | cut -d: -f2-); do
        module_closure "$dep_file" "$dep"
    done
    echo "$module"
}

# Builds the guest's initramfs for the kernel extracted at `root`: busybox, the modules that reach the host's
# root (virtio PCI, 9p over virtio), and /init.
make_initramfs() {
    local root=$1 out=$2 release tree work module
    release=$(ls "$root/lib/modules")
    tree="$root/lib/modules/$release"
    work=$(mktemp -d "$cache/initramfs.XXXXXX")
    mkdir -p "$work/bin" "$work/mods" "$work/proc" "$work/sys" "$work/dev" "$work/newroot" "$work/lib/modules"
    cp /bin/busybox "$work/bin/busybox"
    ln -s busybox "$work/bin/sh"
    for wanted in virtio_pci.ko 9pnet_virtio.ko 9p.ko; do
        grep -o "^[^:]*/$wanted" "$tree/modules.dep" || true
    done | while read -r module; do module_closure "$tree/modules.dep" "$module"; done | awk '!seen[$0]++' |
        while read -r module; do
            cp "$tree/$module" "$work/mods/"
            basename "$module" >>"$work/mods/order"
        done
    cp "$repo/scripts/kernel-matrix-init.sh" "$work/init"
    chmod 755 "$work/init"
    (cd "$work" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out"
    rm -rf "$work"
}

# Boots the kernel at `root` with `initrd`, 4 GiB and 2 vCPUs, under the accelerator `accel` with `cpu`, the
# console going to stdout. Extra arguments go to the kernel's command line.
qemu_boot() {
    local root=$1 initrd=$2 accel=$3 cpu=$4 seconds=$5 release
    shift 5
    release=$(ls "$root/lib/modules")
    timeout "$seconds" qemu-system-x86_64 -machine "q35,accel=$accel" -cpu "$cpu" -smp 2 -m 4G \
        -nographic -no-reboot -serial mon:stdio -nic none \
        -kernel "$root/boot/vmlinuz-$release" -initrd "$initrd" -append "console=ttyS0 panic=-1 loglevel=4 $*" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap </dev/null
}

# Boots `package`'s kernel and leaves the console in `log`. KVM is used when a probe boot under it reaches /init:
# /dev/kvm may exist and still not run a guest (nested under another hypervisor, qemu's `-cpu max` and `host`
# abort on MSR 0x10a, and without that MSR the kernel hung before its first message); otherwise TCG emulates.
boot_guest() {
    local package=$1 log=$2 root="$cache/root-$1" initrd accel=tcg cpu=max
    initrd=$(mktemp "$cache/initramfs-XXXXXX.img")
    make_initramfs "$root" "$initrd"
    if [ -w /dev/kvm ] &&
        qemu_boot "$root" "$initrd" kvm host,-arch-capabilities 60 nodeagent.probe 2>&1 | tr -d '\r' |
        grep -q "^matrix: probe ok"; then
        accel=kvm
        cpu=host,-arch-capabilities
    fi
    echo "=== booting $package ($accel)" >&2
    echo "matrix: accel=$accel" >"$log"
    qemu_boot "$root" "$initrd" "$accel" "$cpu" "$guest_timeout" "nodeagent.repo=$repo" \
        "nodeagent.modules=$root/lib/modules" ${KERNEL_MATRIX_RUNNER:+"nodeagent.runner=$KERNEL_MATRIX_RUNNER"} \
        >>"$log" 2>&1 || printf '\nmatrix: qemu exit=%s\n' "$?" >>"$log"
    rm -f "$initrd"
}

# Results of every kernel, one block each, for the table.
declare -A versions
overall=0
for kernel in "${kernels[@]}"; do
    log="$cache/logs/$kernel.log"
    if [ "$kernel" = host ]; then
        versions[$kernel]="running kernel (not a Debian package)"
        "$repo/scripts/kernel-matrix-runner.sh" "$repo" >"$log" 2>&1 || true
    else
        package=$(package_of "$kernel")
        [ -n "$package" ] || {
            echo "no Debian package found for kernel $kernel" >&2
            exit 1
        }
        prepare_kernel "$package"
        versions[$kernel]="$package $(cat "$cache/root-$package/.version")"
        boot_guest "$package" "$log"
    fi
    tr -d '\r' <"$log" | grep -oE "matrix(-log)?: .*" >"$log.results" || true
    grep -q "^matrix: done status=0" "$log.results" || overall=1
done

# The table and KERNELS.md's results section, from the collected lines.
results=$(mktemp)
{
    echo "| Kernel | Package | Run | Programs loaded | Verifier instructions (headroom) | Fixtures | Services" \
        "| HTTP rules (L7) | End-to-end |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for kernel in "${kernels[@]}"; do
        r="$cache/logs/$kernel.log.results"
        release=$(sed -n 's/^matrix: kernel=//p' "$r" | head -1)
        accel=$(sed -n 's/^matrix: accel=//p' "$r" | head -1)
        programs=$(grep -c "^matrix: verifier: " "$r" || true)
        line='program=\([^ ]*\) instructions=\([^ ]*\) .* headroom=\([^ ]*\)$'
        insns=$(sed -n "s/^matrix: verifier: .* $line/\1 \2 (\3)/p" "$r" | sort | paste -sd, - | sed 's/,/, /g')
        group() {
            line='result=\([a-z]*\) executed=\([0-9]*\) failures=\([^ ]*\) .*'
            sed -n "s/^matrix: group=$1 $line/\1: \2 tests, \3 failed/p" "$r"
        }
        [ -n "$release" ] || release="$kernel (did not report)"
        run=host
        [ -z "$accel" ] || run="qemu $accel"
        echo "| $release | ${versions[$kernel]} | $run | $programs | ${insns:-none}" \
            "| $(group fixtures) | $(group services) | $(group l7) | $(group endtoend) |"
    done
} >"$results"
cat "$results"

# Any program above 700,000 instructions fails the verifier group, which fails the run; so does anything else.
for kernel in "${kernels[@]}"; do
    r="$cache/logs/$kernel.log.results"
    if ! grep -q "^matrix: done status=0" "$r"; then
        echo "--- $kernel failed:" >&2
        grep -E "result=fail|^matrix-log: |qemu exit" "$r" >&2 || echo "no results: see $cache/logs/$kernel.log" >&2
    fi
done

if [ "${#kernels[@]}" -eq 3 ]; then
    {
        sed '/^<!-- results -->$/q' KERNELS.md
        echo
        echo "Run of $(date -u +%Y-%m-%d) on commit $(git rev-parse --short HEAD):"
        echo
        cat "$results"
    } >KERNELS.md.new
    mv KERNELS.md.new KERNELS.md
fi
rm -f "$results"
exit "$overall"
