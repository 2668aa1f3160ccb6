#!/bin/sh
# /init of the Linux integration test and bench/boot: a few real commands, then power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
echo "tsvmm-init: userspace up"
uname -a
head -n 8 /proc/cpuinfo
echo "written in tmpfs" > /tmp/file
echo "tmpfs says: $(cat /tmp/file)"
echo "mounts: $(grep -c -e proc -e sysfs -e tmpfs /proc/mounts)"
for v in meltdown spectre_v2 mds; do echo "vulnerability $v: $(cat /sys/devices/system/cpu/vulnerabilities/$v)"; done
if [ -z "$TSVMM_INTERACTIVE" ] && ! grep -q tsvmm.interactive /proc/cmdline; then
  echo "tsvmm-init: powering off"
  poweroff -f
fi
echo "tsvmm-init: shell"
exec sh
