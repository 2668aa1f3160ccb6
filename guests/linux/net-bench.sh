#!/bin/sh
# The init script of bench/net, run by the /init of `tsvmm initramfs --net-dhcp` (the network
# modules loaded and eth0 configured by DHCP first): sends 64 MiB of zeros with nc to the port
# tsvmm.netbench=PORT of the kernel command line on the default gateway, which passt maps to the
# host (the bench's server, which counts and times the bytes and closes the connection at the
# last one). Prints "tsvmm-net: done", or why not, then powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
port=
for a in $(cat /proc/cmdline); do case $a in tsvmm.netbench=*) port=${a#tsvmm.netbench=};; esac; done
gw=$(ip route | sed -n 's/^default via \([0-9.]*\).*/\1/p')
if [ -z "$port" ] || [ -z "$gw" ]; then
  echo "tsvmm-net: no port ($port) or no gateway ($gw)"
else
  { dd if=/dev/zero bs=64k count=1024 2>/dev/null || echo "tsvmm-net: dd failed" >&2; } | nc "$gw" "$port" && echo "tsvmm-net: done" || echo "tsvmm-net: nc failed"
fi
poweroff -f
