#!/usr/bin/env bash
# Sets up an emulated x86-64 CPU with AVX-512 (F/BW/DQ/VL) and AVX512_BF16, so
# that the runtime's AVX-512 kernels can be run and tested on machines
# without AVX-512 (scripts/emulator/run.sh runs a static binary on it;
# scripts/avx512-emulator-check.sh runs the kernel unit tests).
#
# Into DIR = ${MOE_EMULATOR_DIR:-<repo>/build/emulator} it installs:
#   DIR/root  a Debian trixie chroot (debootstrap --variant=minbase) with the
#             Debian kernel, isolinux, xorriso, cpio, the Bochs BIOS images
#             and build-essential, and in /opt/bochs Bochs 3.0 built from
#             Debian's source tarball with bochs-vcvtne2ps2bf16.patch and a
#             minimal configuration (no GUI, plugins or debugger);
#   DIR/init  the guest's PID 1, init.c compiled statically on the host.
# Bochs 3.0 as shipped mis-executes VCVTNE2PS2BF16: the upper half of the
# result repeats the second source's conversions instead of holding the first
# source's; hence the patch. (The runtime's kernels use VDPBF16PS, not this
# instruction, today; compilers may emit it for f32-to-bf16 conversions.)
#
# Takes 5 to 15 minutes (5 on an idle 2-core machine: downloading about 250 MB,
# building Bochs) and about 1 GB of disk (0.8 GB when done); needs root
# (debootstrap, chroot, mount) and network access to deb.debian.org
# (override with MOE_EMULATOR_MIRROR). Each step leaves a stamp in
# DIR/stamps, so a rerun skips finished steps and resumes a failed or
# interrupted setup; logs are in DIR/logs. MOE_EMULATOR_JOBS sets make -j
# (default 2).
#
# Usage: scripts/emulator/setup.sh
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${MOE_EMULATOR_DIR:-$repo/build/emulator}
mirror=${MOE_EMULATOR_MIRROR:-http://deb.debian.org/debian}
jobs=${MOE_EMULATOR_JOBS:-2}
suite=trixie
root=$dir/root
stamps=$dir/stamps
logs=$dir/logs

# The source tarball of Debian's bochs 3.0+dfsg-1 (Debian's patches only touch
# packaging, docs and the BIOS build, none of which this build uses).
bochs_tarball=bochs_3.0+dfsg.orig.tar.xz
bochs_url=$mirror/pool/main/b/bochs/$bochs_tarball
bochs_sha256=78f6c73d4a6472d5130a87ab9dc306d02c7c71ed8e25b3a8ef642e2a7acd282b
packages=(linux-image-amd64 isolinux syslinux-common xorriso cpio gzip xz-utils
          bochsbios vgabios build-essential patch)
# --disable-show-ips: its SIGALRM handler writes to the log, and deadlocks on
# the log's stdio lock when the alarm interrupts a log write.
bochs_configure=(--prefix=/opt/bochs --disable-show-ips
  --enable-x86-64 --enable-cpu-level=6 --enable-all-optimizations
  --enable-avx --enable-evex --disable-amx --disable-cet --enable-protection-keys
  --enable-a20-pin --enable-fpu --enable-pci --enable-cdrom --enable-repeat-speedups
  --disable-smp --disable-debugger --disable-debugger-gui --disable-instrumentation
  --disable-plugins --disable-usb --disable-ne2000 --disable-e1000 --disable-pnic
  --disable-sb16 --disable-es1370 --disable-voodoo --disable-clgd54xx --disable-docbook
  --disable-gameport --disable-busmouse
  --with-nogui --without-x11 --without-x --without-sdl2 --without-term --without-rfb
  --without-wx)

say() { echo "setup: $*" >&2; }
die() { say "$*"; exit 1; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,/^# Usage/p' "$0"; exit 0; }
[[ $# == 0 ]] || die "no arguments expected (see --help)"
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mount); try sudo $0"
[[ $(uname -m) == x86_64 ]] || die "needs an x86-64 Linux host"

# Mount points under $1 (itself included), deepest first.
mounts_under() {
  findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' | sort -r
}
unmount_under() {
  local m
  for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}
# rm -rf that refuses to cross into mounts (e.g. a host /proc left mounted).
safe_rm() {
  [[ -e $1 ]] || return 0
  unmount_under "$1"
  [[ -z $(mounts_under "$1") ]] || die "not removing $1: mounts remain under it"
  rm -rf --one-file-system "$1"
}
cleanup() { [[ -d $root ]] && unmount_under "$root"; true; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$dir" "$stamps" "$logs"
dir=$(cd "$dir" && pwd)
root=$dir/root stamps=$dir/stamps logs=$dir/logs
exec 9>"$dir/.lock"
flock -n 9 || die "another setup.sh is running on $dir"

# A stamp holds a key (e.g. a hash of the step's inputs); a changed key reruns the step.
done_already() { [[ -f $stamps/$1 && $(cat "$stamps/$1") == "$2" ]]; }
stamp() { echo "$2" > "$stamps/$1"; }
# step NAME MESSAGE COMMAND...: runs COMMAND with its output in logs/NAME.log.
step() {
  local name=$1 msg=$2 log=$logs/$1.log
  shift 2
  say "$msg..."
  if ! "$@" > "$log" 2>&1; then
    local last
    last=$(grep -v '^[[:space:]]*$' "$log" | tail -1 | cut -c1-120)
    die "step '$name' failed; log: $log${last:+ (last line: $last)}"
  fi
}
# Runs a command in the chroot with a clean environment and /proc mounted.
in_root() {
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  local rc=0
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
    "$@" || rc=$?
  umount "$root/proc"
  return $rc
}

if ! command -v debootstrap >/dev/null; then
  step host-debootstrap "installing debootstrap on the host" \
    sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap'
fi
avail_kb=$(df --output=avail -k "$dir" | tail -1)
if [[ ! -f $stamps/bochs-build ]] && ((avail_kb < 1200000)); then
  say "warning: only $((avail_kb / 1024)) MB free in $dir; about 1 GB is needed"
fi
all_done=1

# 1. The chroot. A partial one (failed or interrupted debootstrap) is removed first.
key="$suite $mirror"
if ! done_already debootstrap "$key"; then
  all_done=0
  rm -f "$stamps"/*
  safe_rm "$root"
  step debootstrap "debootstrap $suite into $root (about 2 min)" \
    debootstrap --variant=minbase "$suite" "$root" "$mirror"
  unmount_under "$root"
  stamp debootstrap "$key"
fi

# 2. Packages. This site may intercept TLS: give the chroot the host's CA certificates.
key="${packages[*]}"
if ! done_already packages "$key"; then
  all_done=0
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [[ -f $crt ]] || continue
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp "$crt" "$root/usr/local/share/ca-certificates/"
  done
  echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
  # No services may start in the chroot.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  step packages "installing the kernel, ISO tools and compilers in the chroot (about 2 min)" \
    in_root sh -c "dpkg --configure -a && apt-get update \
      && apt-get install -y --no-install-recommends ${packages[*]} && apt-get clean"
  stamp packages "$key"
fi

# 3. Bochs source tarball, checked against its known hash.
if ! done_already bochs-source "$bochs_sha256"; then
  all_done=0
  mkdir -p "$root/src"
  step bochs-source "downloading the Bochs 3.0 source" \
    in_root /usr/lib/apt/apt-helper download-file "$bochs_url" "/src/$bochs_tarball" \
      "SHA256:$bochs_sha256"
  echo "$bochs_sha256  $root/src/$bochs_tarball" | sha256sum -c --quiet - \
    || die "step 'bochs-source': $root/src/$bochs_tarball has the wrong SHA-256"
  stamp bochs-source "$bochs_sha256"
fi

# 4. Bochs, patched, from a fresh source tree.
key=$(cat "$here/bochs-vcvtne2ps2bf16.patch" <(echo "${bochs_configure[*]}") | sha256sum)
if ! done_already bochs-build "$key" || [[ ! -x $root/opt/bochs/bin/bochs ]]; then
  all_done=0
  safe_rm "$root/src/bochs-3.0"
  safe_rm "$root/opt/bochs"
  cp "$here/bochs-vcvtne2ps2bf16.patch" "$root/src/"
  step bochs-build "building Bochs 3.0 with make -j$jobs (3 to 10 min)" \
    in_root sh -c "cd /src && tar xJf $bochs_tarball && cd bochs-3.0 \
      && patch -p1 < ../bochs-vcvtne2ps2bf16.patch \
      && ./configure ${bochs_configure[*]} && make -j$jobs && make install"
  [[ -x $root/opt/bochs/bin/bochs ]] \
    || die "step 'bochs-build': no /opt/bochs/bin/bochs; log: $logs/bochs-build.log"
  safe_rm "$root/src/bochs-3.0" # 130 MB of objects
  stamp bochs-build "$key"
fi

# 5. The guest's PID 1.
key=$(sha256sum < "$here/init.c")
if ! done_already init "$key" || [[ ! -x $dir/init ]]; then
  all_done=0
  if command -v "${CC:-cc}" >/dev/null; then
    step init "compiling init.c" "${CC:-cc}" -static -O2 -o "$dir/init" "$here/init.c"
  else # no host compiler: the chroot has one
    cp "$here/init.c" "$root/src/init.c"
    step init "compiling init.c in the chroot" \
      in_root cc -static -O2 -o /src/init /src/init.c
    mv "$root/src/init" "$dir/init"
  fi
  stamp init "$key"
fi

if ((all_done)); then say "up to date ($dir)"; else say "done: $dir"; fi
