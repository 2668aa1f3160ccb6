#!/bin/sh
# /init of bench/workload: user-space workloads timed by the guest's own clock, so that the boot and
# everything the host does around the guest stay out of the figures. Two lines per workload:
#   tsvmm-workload-start NAME
#   tsvmm-workload NAME NANOSECONDS RESULT
# RESULT is what the workload computed (a checksum, a count): the same on every correct machine.
# (The lines also delimit a profile: tsvmm run --trace profile,from=...,to=....)
# Kernel command line: tsvmm.scale=PERCENT scales every size (default 100); tsvmm.only=A,B runs
# only the workloads named; tsvmm.kallsyms prints the kernel's code symbols at the end, between
# tsvmm-kallsyms-begin and tsvmm-kallsyms-end (a symbol map for `tsvmm run --trace profile`).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
echo "tsvmm-workload: userspace up"

scale=100
only=
kallsyms=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    tsvmm.scale=*) scale=${arg#tsvmm.scale=} ;;
    tsvmm.only=*) only=",${arg#tsvmm.only=}," ;;
    tsvmm.kallsyms) kallsyms=1 ;;
  esac
done
# n BASE: BASE scaled by tsvmm.scale percent (at least 1).
n() { v=$(($1 * scale / 100)); [ "$v" -lt 1 ] && v=1; echo "$v"; }

# The monotonic clock in nanoseconds: the third line of /proc/timer_list is "now at N nsecs".
# Read with the shell's own read (no process is started).
now() {
  { read -r _ ; read -r _ ; read -r _ _ ns _ ; } < /proc/timer_list
  echo "$ns"
}

# run NAME FUNCTION: times FUNCTION (which prints its result) and prints the workload's line.
run() {
  case "$only" in "" | *",$1,"*) ;; *) return ;; esac
  echo "tsvmm-workload-start $1"
  t0=$(now)
  result=$("$2" 2>&1 | tr '\n' ' ')
  t1=$(now)
  echo "tsvmm-workload $1 $((t1 - t0)) ${result% }"
}

# Every page is a 4 KiB page fault (a transparent huge page would take 512 in one).
[ -w /sys/kernel/mm/transparent_hugepage/enabled ] && echo never > /sys/kernel/mm/transparent_hugepage/enabled

# Input of the compression and hashing workloads, made before timing: /tmp/buf, ~2.7 MB of text
# with some structure (bench/workload.ts puts it in the initramfs as /data/buf; made here when it
# is missing), and /tmp/buf4, four copies of it (repeats further apart than gzip's 32 KiB window).
if [ -f /data/buf ]; then cp /data/buf /tmp/buf; else
  awk 'BEGIN { s = 1; for (i = 0; i < 90000; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%d %x line %d of the buffer\n", i, s, s % 1000 } }' > /tmp/buf
fi
if [ "$scale" != 100 ]; then head -c "$(n "$(wc -c < /tmp/buf)")" /tmp/buf > /tmp/b; mv /tmp/b /tmp/buf; fi
cat /tmp/buf /tmp/buf /tmp/buf /tmp/buf > /tmp/buf4

# Shell arithmetic (ash's builtins only: no process is started).
shell_arith() { i=0; s=0; c=$(n 40000); while [ $i -lt $c ]; do s=$(( (s * 31 + i) % 1000003 )); i=$((i + 1)); done; echo $s; }
# awk's interpreter on floating-point arithmetic.
awk_arith() { awk -v n="$(n 200000)" 'BEGIN { s = 0; for (i = 0; i < n; i++) s = (s * 31 + i) % 1000003; print s }'; }
gzip_buf() { gzip -c < /tmp/buf4 | md5sum | cut -d' ' -f1; }
bzip2_buf() { bzip2 -c < /tmp/buf | md5sum | cut -d' ' -f1; }
sha256_buf() { i=0; c=$(n 4); while [ $i -lt $c ]; do sha256sum /tmp/buf4; i=$((i + 1)); done | uniq -c | tr -s ' ' | cut -d' ' -f2,3; }
# fork + exec + exit + wait of a small static program.
fork_exec() { i=0; c=$(n 300); while [ $i -lt $c ]; do /bin/true; i=$((i + 1)); done; echo $i; }
# dd reads /dev/zero into a fresh 16 MiB buffer: 4096 page faults in each process.
page_faults() {
  i=0; c=$(n 40)
  while [ $i -lt $c ]; do dd if=/dev/zero of=/dev/null bs=16M count=1; i=$((i + 1)); done 2>/tmp/dd.log
  grep -c '^1+0 records out' /tmp/dd.log
}
# A read and a write system call per byte.
syscalls() { dd if=/dev/zero of=/dev/null bs=1 count="$(n 400000)" 2>&1 | grep 'records out'; }

run shell-arith shell_arith
run awk-arith awk_arith
run gzip gzip_buf
run bzip2 bzip2_buf
run sha256 sha256_buf
run fork-exec fork_exec
run page-faults page_faults
run syscalls syscalls
echo "tsvmm-workload: done"
if [ -n "$kallsyms" ]; then
  echo "tsvmm-kallsyms-begin"
  grep ' [tTwW] ' /proc/kallsyms
  echo "tsvmm-kallsyms-end"
fi
poweroff -f
