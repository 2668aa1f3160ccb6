#!/bin/sh
# /init of the virtio integration test (test/linux/virtio-soft.test.ts): loads the modules listed
# in /etc/tsvmm-modules (in that order: Debian's kernel ships virtio and ext4 as modules), then
# exercises the devices and reports each result on a "tsvmm-virtio:" line for the host to check.
#   default:           vda (ext4): hash of /hello.bin, write /new, sync, unmount; vdb (ext4, a
#                      read-only disk): writes fail; the entropy device; hvc0 as a console; power off.
#   tsvmm.durability:  writes /pattern to vda at 1 MiB with O_DIRECT and fsync, says so, and waits
#                      (the host kills its own process then, and looks in the image).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
say() { echo "tsvmm-virtio: $*"; }
for m in $(cat /etc/tsvmm-modules); do insmod "/lib/modules/$m.ko" || say "insmod $m failed"; done
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
say "modules loaded; disks: $(ls /sys/block | grep vd | tr '\n' ' ')"

if grep -q tsvmm.durability /proc/cmdline; then
  dd if=/pattern of=/dev/vda bs=4096 seek=256 oflag=direct conv=fsync 2>/dev/null && say "flushed $(wc -c < /pattern) bytes"
  while :; do sleep 1000; done
fi

say "vda serial: $(cat /sys/block/vda/serial)"
say "vdb read-only: $(cat /sys/block/vdb/ro)"
mkdir -p /mnt
mount -t ext4 /dev/vda /mnt && say "vda mounted"
say "hello.bin sha256: $(sha256sum /mnt/hello.bin | cut -d' ' -f1)"
seq 1 20000 > /mnt/new
sync
say "new sha256: $(sha256sum /mnt/new | cut -d' ' -f1)"
umount /mnt && say "vda unmounted"
mkdir -p /ro
mount -t ext4 /dev/vdb /ro 2>/dev/null && say "vdb mounted: $(grep ' /ro ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
say "vdb marker: $(cat /ro/marker)"
say "vdb file write: $( (echo x > /ro/new) 2>&1)"
umount /ro
say "vdb raw write: $(dd if=/dev/zero of=/dev/vdb bs=512 count=1 2>&1 | head -n 1)"
say "rng: $(cat /sys/class/misc/hw_random/rng_current) gave $(head -c 64 /dev/hwrng | wc -c) bytes"
# hvc0 stays open (fd 3) from the prompt to the read: a tty closed in between drops typed input.
exec 3<>/dev/hvc0
echo "tsvmm-virtio: hello on hvc0, type a line" >&3
echo "tsvmm-virtio: kernel message" > /dev/kmsg
read -r line <&3
echo "tsvmm-virtio: hvc0 read '$line'" >&3
exec 3>&-
say "powering off"
poweroff -f
