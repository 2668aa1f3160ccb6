#!/bin/sh
# /init of bench/blk: 64 MiB written to /dev/vda and read back, sequentially, in 1 MiB requests
# with O_DIRECT (no guest page cache), each timed by the guest's clock so that boot and host
# start-up are left out. Then the same on /dev/ram0, a 64 MiB RAM disk (brd): the guest's own
# block layer and copies with no device behind them, the reference that tells the disk path's
# cost from the CPU's. The modules in /etc/tsvmm-modules are loaded first (virtio-mmio for
# tsvmm, virtio-pci for QEMU's pc machine; brd with its size). Prints "tsvmm-blk NAME
# NANOSECONDS", then powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/tsvmm-modules); do [ "$m" = brd ] || insmod "/lib/modules/$m.ko" 2>/dev/null; done
insmod /lib/modules/brd.ko rd_nr=1 rd_size=65536 || echo "tsvmm-blk: no brd"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
[ -b /dev/vda ] || echo "tsvmm-blk: no /dev/vda"

# The monotonic clock in nanoseconds (the third line of /proc/timer_list), read without a process.
now() {
  { read -r _ ; read -r _ ; read -r _ _ ns _ ; } < /proc/timer_list
  echo "$ns"
}

# measure PREFIX DEVICE: 64 MiB written, then read back.
measure() {
  t0=$(now)
  dd if=/dev/zero of="$2" bs=1M count=64 oflag=direct 2>/dev/null || echo "tsvmm-blk: ${1}write failed"
  t1=$(now)
  echo "tsvmm-blk ${1}write $((t1 - t0))"
  t0=$(now)
  dd if="$2" of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null || echo "tsvmm-blk: ${1}read failed"
  t1=$(now)
  echo "tsvmm-blk ${1}read $((t1 - t0))"
}
echo "tsvmm-blk: disk start"
measure "" /dev/vda
echo "tsvmm-blk: disk end"
measure ram- /dev/ram0
echo "tsvmm-blk: done"
poweroff -f
