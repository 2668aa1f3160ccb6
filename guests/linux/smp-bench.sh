#!/bin/sh
# /init of bench/smp: a parallel workload, two CPU-bound jobs (a busybox shell counting loop each)
# started together, timed by the guest's clock from the start of both to the end of the last, so
# that boot and host start-up are left out. With one vCPU the jobs share it; with two each can
# have its own. Prints "tsvmm-smp cpus N", "tsvmm-smp jobs NANOSECONDS", then powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
ROUNDS=10000

# The monotonic clock in nanoseconds (the third line of /proc/timer_list), read without a process.
now() {
  { read -r _ ; read -r _ ; read -r _ _ ns _ ; } < /proc/timer_list
  echo "$ns"
}

job() {
  i=0
  while [ $i -lt $ROUNDS ]; do i=$((i + 1)); done
}

echo "tsvmm-smp cpus $(grep -c ^processor /proc/cpuinfo)"
t0=$(now)
job & job & wait
t1=$(now)
echo "tsvmm-smp jobs $((t1 - t0))"
echo "tsvmm-smp: done"
poweroff -f
