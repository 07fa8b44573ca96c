#!/usr/bin/env bash
# Runs a statically linked x86-64 Linux program on an emulated CPU with AVX-512
# (F/BW/DQ/VL) and AVX512_BF16: Bochs (CPU model sapphire_rapids, 1 CPU) boots
# the Debian kernel from an isolinux ISO whose initramfs holds the program and
# a tiny PID 1 (init.c). The environment comes from scripts/emulator/setup.sh,
# in ${MOE_EMULATOR_DIR:-<repo>/build/emulator}. Needs root (chroot, mknod).
# Booting takes about 30 s; the kernel unit tests take about 85 s in all.
#
# Usage: scripts/emulator/run.sh [-e VAR=VALUE]... [-f HOST[:GUEST]]... BINARY [ARGS...]
#   -e VAR=VALUE     environment variable for the program (repeatable; with
#                    none, the program gets PATH=/bin:/sbin:/usr/bin HOME=/ TERM=dumb)
#   -f HOST[:GUEST]  copy an extra file into the guest (default GUEST: /<basename>)
# The program runs as /prog (argv[0] "/prog") in "/", with stdin /dev/null; its
# stdout and stderr, merged, are streamed to this script's stdout. The exit
# status is the program's (128+N if a signal N killed it).
#
# Environment:
#   BOCHS_TIMEOUT   wall-clock seconds for the whole run (default 900)
#   BOCHS_CPU       Bochs CPU model (default sapphire_rapids)
#   BOCHS_MEM       guest RAM in MiB (default 1024)
#   BOCHS_IPS       emulated instructions per second for the guest clock (default 60000000)
#   BOCHS_KEEP=1    keep the work directory (console.log, bochs.log, ...) and print its path
#   BOCHS_VERBOSE=1 print the guest's kernel console to stderr at the end
#   BOCHS_TIMING=1  print the emulator's wall time to stderr
#   BOCHS_APPEND    extra kernel command-line arguments
# When the program gives no exit status, this script exits with 124 (timeout),
# 125 (boot failure, kernel panic or the emulator died) or 126 (bad usage or
# input, environment not set up), after a "run.sh:" line on stderr; a program
# may of course exit with these codes itself.
set -uo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
repo=$(cd "$here/../.." && pwd)
env_dir=${MOE_EMULATOR_DIR:-$repo/build/emulator}
R=$env_dir/root
bochs=/opt/bochs/bin/bochs # inside the chroot: Bochs 3.0 with the VCVTNE2PS2BF16 fix
timeout=${BOCHS_TIMEOUT:-900}
cpu=${BOCHS_CPU:-sapphire_rapids}
mem=${BOCHS_MEM:-1024}
ips=${BOCHS_IPS:-60000000}
keep=${BOCHS_KEEP:-0}

die() { echo "run.sh: $*" >&2; exit 126; }
usage="usage: $0 [-e VAR=VALUE]... [-f HOST[:GUEST]]... BINARY [ARGS...]"

envs=() files=()
while (($#)); do
  case $1 in
    -e) (($# >= 2)) || die "-e needs VAR=VALUE"; envs+=("$2"); shift 2 ;;
    -f) (($# >= 2)) || die "-f needs HOST[:GUEST]"; files+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 ($usage)" ;;
    *) break ;;
  esac
done
(($# >= 1)) || die "$usage"
[[ $(id -u) == 0 ]] || die "must run as root (chroot, mknod)"
if [[ ! -x $R$bochs || ! -x $env_dir/init || ! -f $R/usr/share/vgabios/vgabios.bin ]]; then
  die "no emulator environment in $env_dir; run scripts/emulator/setup.sh (as root) first"
fi
bin=$1
shift
[[ -f $bin ]] || die "no such file: $bin"
if LC_ALL=C readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  die "$bin is dynamically linked; only static binaries can run in the guest"
fi

mkdir -p "$R/work"
W=$(mktemp -d "$R/work/run.XXXXXX") || die "mktemp failed"
G=/work/${W##*/} # the work directory as seen inside the chroot
bpid="" tpid=""
stop_bochs() { # bpid is `timeout`, which leads its own process group (bochs inside)
  [[ -n $bpid ]] || return 0
  kill -TERM "$bpid" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$bpid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$bpid" 2>/dev/null
}
cleanup() {
  [[ -n $tpid ]] && kill "$tpid" 2>/dev/null
  stop_bochs
  wait 2>/dev/null
  if [[ $keep == 1 ]]; then
    echo "run.sh: work directory kept: $W" >&2
  else
    case $W in "$R"/work/run.*) rm -rf --one-file-system "$W" ;; esac
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The initramfs: init, the program, its arguments and environment, extra files.
I=$W/initrd
mkdir -p "$I/dev" "$W/iso/isolinux"
cp "$env_dir/init" "$I/init"
cp "$bin" "$I/prog"
chmod 755 "$I/init" "$I/prog"
mknod -m 600 "$I/dev/console" c 5 1
: > "$I/args"
for a in "$@"; do printf '%s\0' "$a" >> "$I/args"; done
: > "$I/env"
for e in ${envs[@]+"${envs[@]}"}; do printf '%s\0' "$e" >> "$I/env"; done
for spec in ${files[@]+"${files[@]}"}; do
  h=${spec%%:*}
  g=/${h##*/}
  [[ $spec != "$h" ]] && g=${spec#*:}
  [[ -f $h ]] || die "no such file: $h"
  mkdir -p "$I$(dirname "$g")"
  cp "$h" "$I$g"
done
chroot "$R" /bin/sh -c \
  "cd '$G/initrd' && find . | cpio -o -H newc --quiet | gzip -1 > '$G/iso/initrd.gz'" \
  || die "initramfs creation failed"

# The boot ISO. Kernel arguments Bochs needs: no5lvl (Bochs's SMM RSM fails with LA57
# on), ibt=off, clearcpuid=aperfmperf (else the kernel reads two MSRs Bochs lacks at
# every tick, two bochs.log lines each); panic=0 keeps a panicking guest up until we
# see the panic.
cp "$R/usr/lib/ISOLINUX/isolinux.bin" "$R/usr/lib/syslinux/modules/bios/ldlinux.c32" \
  "$W/iso/isolinux/"
kernel=$(printf '%s\n' "$R"/boot/vmlinuz-* | sort -V | tail -1)
cp "$kernel" "$W/iso/vmlinuz"
cmdline="console=ttyS0,115200 quiet loglevel=3 nokaslr mitigations=off panic=0"
cmdline+=" tsc=reliable no_timer_check rdinit=/init no5lvl ibt=off clearcpuid=aperfmperf"
cmdline+=" ${BOCHS_APPEND:-}"
cat > "$W/iso/isolinux/isolinux.cfg" <<CFG
default linux
prompt 0
timeout 0
label linux
  kernel /vmlinuz
  append initrd=/initrd.gz $cmdline
CFG
chroot "$R" xorriso -as mkisofs -quiet -o "$G/boot.iso" -b isolinux/isolinux.bin \
  -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table "$G/iso" \
  > "$W/xorriso.log" 2>&1 || { cat "$W/xorriso.log" >&2; die "ISO creation failed"; }

# com1 (the kernel console, where init prints MOE-EXIT) and com2 (the program's
# output) are files.
cat > "$W/bochsrc" <<RC
memory: guest=$mem, host=$mem
cpu: model=$cpu, count=1, ips=$ips, reset_on_triple_fault=0, ignore_bad_msrs=1
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
pci: enabled=1, chipset=i440fx
ata0-master: type=cdrom, path=$G/boot.iso, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=$G/console.log
com2: enabled=1, mode=file, dev=$G/out.log
display_library: nogui
mouse: enabled=0
speaker: enabled=0
clock: sync=none, time0=local
log: $G/bochs.log
panic: action=fatal
error: action=report
info: action=report
debug: action=ignore
RC
: > "$W/out.log"
: > "$W/console.log"

t0=$(date +%s.%N)
timeout -k 5 "$timeout" chroot "$R" "$bochs" -q -f "$G/bochsrc" \
  < /dev/null > "$W/bochs.stdout" 2>&1 &
bpid=$!
tail -c +1 -f --pid="$bpid" "$W/out.log" 2>/dev/null & # stream the program's output
tpid=$!
status=""
while kill -0 "$bpid" 2>/dev/null; do
  if grep -qa '^MOE-EXIT [0-9]' "$W/console.log"; then status=marker; break; fi
  if grep -qaE 'Kernel panic|end Kernel panic' "$W/console.log"; then status=panic; break; fi
  sleep 0.5
done
if [[ $status == marker ]]; then
  # Let Bochs handle the ACPI power-off: a clean exit flushes the com files.
  for _ in $(seq 1 20); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.25; done
fi
kill -0 "$bpid" 2>/dev/null && stop_bochs
wait "$bpid" 2>/dev/null
brc=$?
bpid=""
sleep 0.3
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
tpid=""
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

console() { tr -d '\r' < "$W/console.log"; }
if [[ ${BOCHS_VERBOSE:-0} == 1 ]]; then
  { echo "---- guest console ----"; console; echo "----"; } >&2
fi
code=$(console | awk '/^MOE-EXIT [0-9]/ { c = $2 } END { print c }')
if [[ -n $code ]]; then
  sig=$(console | awk '/^MOE-SIGNAL/ { print $2 }')
  [[ -n $sig ]] && echo "run.sh: program killed by signal $sig" >&2
  [[ ${BOCHS_TIMING:-0} == 1 ]] && echo "run.sh: wall ${elapsed}s" >&2
  exit "$code"
fi
if ((brc == 124 || brc == 137)); then
  echo "run.sh: TIMEOUT after ${timeout}s (BOCHS_TIMEOUT), no exit status; console tail:" >&2
  console | tail -20 >&2
  exit 124
fi
echo "run.sh: BOOT/RUN FAILURE (${status:-bochs exited}, bochs rc=$brc, ${elapsed}s)," \
  "no exit status" >&2
{ echo "--- guest console tail ---"; console | tail -30
  echo "--- bochs log tail ---"; tail -15 "$W/bochs.log"; tail -5 "$W/bochs.stdout"
} >&2 2>/dev/null
exit 125
