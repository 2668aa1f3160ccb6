#!/bin/sh
# /init of the outer guest of scripts/kvm-nested.sh (test/kvm-nested/outer-guest.ts builds it):
# loads Debian's kvm (and dummy) modules, checks /dev/kvm, sets up the network the tests use, then
# runs each line "name|command" of /kvm-nested/steps from /tsvmm and frames its output with
# "@@kvm-nested" lines that the host reads. Powers off at the end; the host reads the results, not
# the exit.
export PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TMPDIR=/tmp
# passt (--nic user) confines itself with pivot_root, which fails where the root is the initramfs
# (rootfs, a mount without a parent): this script starts again in a bind mount of it moved onto /
# (as switch_root does, without the copy), a root with a parent. Only chrooted into the bind mount
# where it was, passt could not make its user namespace (refused to a chrooted process).
if [ -z "${KVM_NESTED_BOUND:-}" ]; then
  mkdir -p /bound
  if mount -o bind / /bound && cd /bound && mount -o move /bound /; then
    KVM_NESTED_BOUND=1 exec chroot . /init
  fi
  echo "@@kvm-nested warning: no bind mount of the root moved onto it: passt will not start"
  cd /
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp

say() { echo "@@kvm-nested $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
finish() { say "done at $(uptime_s) s"; poweroff -f; }

say "outer up at $(uptime_s) s, $(nproc) CPUs"
if ! grep -qw -e svm -e vmx /proc/cpuinfo; then
  say "skip: the CPU QEMU emulates has neither SVM nor VMX"
  finish
fi
for m in $(cat /kvm-nested/module-order); do
  if ! insmod "/kvm-nested/modules/$m.ko"; then
    say "fatal: insmod $m failed"
    finish
  fi
done
if [ ! -c /dev/kvm ]; then
  say "fatal: no /dev/kvm after loading $(cat /kvm-nested/module-order)"
  dmesg | tail -n 20
  finish
fi
say "kvm up at $(uptime_s) s: $(dmesg | grep -o -e 'Nested Virtualization enabled' -e 'Nested Paging enabled' | tr '\n' ';')"

# Keep KVM's static keys on for the whole run (kvm-hold.asm says why); "kvm_nested.nohold" on the
# kernel command line leaves it out, to watch the outer guest without it.
if ! grep -qw kvm_nested.nohold /proc/cmdline; then
  /kvm-nested/kvm-hold >/tmp/kvm-hold.out 2>&1 &
  hold=$!
  n=0
  until grep -q ready /tmp/kvm-hold.out; do
    n=$((n + 1))
    if ! kill -0 "$hold" 2>/dev/null || [ "$n" -gt 300 ]; then
      say "fatal: kvm-hold did not start: $(cat /tmp/kvm-hold.out)"
      finish
    fi
    sleep 0.1
  done
  say "kvm-hold up"
fi

# The network the tests use: loopback (the GDB stub, the HTTP server of the --nic user test), and
# for passt, which takes its addresses and gateway from the host interface of the default route,
# that route through dummy0 (made by the dummy module loaded above). Nothing leaves through it:
# the dummy drops what it is sent, and passt maps its guest's connections to the gateway's
# address to this loopback.
ip link set lo up
if ! { ip addr add 10.0.2.15/24 dev dummy0 && ip link set dummy0 up && ip route add default via 10.0.2.2 dev dummy0; }; then
  say "warning: no dummy interface with a default route: --nic user (passt) will not start"
fi

# A line every 10 s while the outer kernel runs: the host takes a long silence for a wedged guest.
(while sleep 10; do say "beat $(uptime_s)"; done) &

export TSVMM_TEST_KVM_ON_QEMU_TCG=1 # test/helpers/kvm.ts: the CPU under this KVM is QEMU TCG
cd /tsvmm || finish
while IFS='|' read -r name cmd; do
  [ -n "$name" ] || continue
  t0=$(uptime_s)
  say "begin $name"
  sh -c "$cmd" </dev/null 2>&1
  say "end $name rc=$? from $t0 to $(uptime_s) s"
done </kvm-nested/steps
finish
