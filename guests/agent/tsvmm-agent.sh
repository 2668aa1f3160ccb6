#!/bin/sh
# tsvmm-agent: runs shell commands for the host over one byte channel, with nothing but busybox
# (sh, base64, setsid, sleep, head, stat, cat, mkdir, rm, mknod, mount). The framing is in
# docs/agent-protocol.md; in short:
#   agent -> host, once:   tsvmm-agent 1\n
#   host -> agent:         E <id> <timeout-ms> <max-bytes> <command in base64>\n
#   agent -> host:         R <id> <status> <out-size> <err-size> <out-sent> <err-sent>\n
#                          then out-sent bytes of stdout and err-sent bytes of stderr, raw
#                          (status: the exit status, or T when the command was killed at its timeout)
#                      or  F <id> <reason>\n   (the request could not be run)
#
#   tsvmm-agent           finds the virtio-console port named org.tsvmm.agent
#                         ($TSVMM_AGENT_SYSFS/class/virtio-ports/*/name; sysfs, default /sys, is
#                         mounted there if it is not), makes its /dev node if missing, and serves
#                         it; when the channel ends (the host closed it) it opens it again a
#                         second later. It gives up when no device is bound to virtio_console, or
#                         no such port shows up in 20 s.
#   tsvmm-agent --stdio   serves the protocol on standard input and output.
#
# Commands run one at a time, as `sh -c COMMAND` in their own session (setsid), with stdin
# /dev/null and stdout/stderr in files under $TSVMM_AGENT_DIR (default /run/tsvmm-agent), so that
# a command's background children never hold the reply back; at the timeout the whole session is
# killed. The output files live in the guest's RAM until the next command.

PORT_NAME=org.tsvmm.agent
WORK=${TSVMM_AGENT_DIR:-/run/tsvmm-agent}
SYSFS=${TSVMM_AGENT_SYSFS:-/sys}

isnum() {
  case $1 in '' | *[!0-9]* | ????????????????*) return 1 ;; esac
}

fail() {
  printf 'F %s %s\n' "$1" "$2"
}

# Sends signal $1 to the session (process group) that process $2 leads, which it may not lead yet
# (a setsid that has not run): then to the process, and again to the group, which covers a
# process that became the leader between the first two kills.
kill_session() {
  kill "-$1" "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null
  kill "-$1" "-$2" 2>/dev/null
  return 0
}

serve() {
  set -f
  umask 077
  printf 'tsvmm-agent 1\n'
  while IFS= read -r line; do
    set -- $line
    if [ "$#" -lt 4 ] || [ "$#" -gt 5 ] || [ "$1" != E ] || ! isnum "$2"; then
      isnum "${2:-}" && fail "$2" bad-request
      continue
    fi
    id=$2 tmo=$3 cap=$4
    if ! isnum "$tmo" || ! isnum "$cap"; then
      fail "$id" bad-request
      continue
    fi
    cmd=$(printf '%s' "${5:-}" | base64 -d 2>/dev/null) || {
      fail "$id" bad-base64
      continue
    }
    # Fresh files: a background child of the previous command still writes into its old ones.
    if ! { [ -d "$WORK" ] || mkdir -p "$WORK"; } 2>/dev/null || ! rm -f "$WORK/out" "$WORK/err" "$WORK/timedout" ||
      ! : >"$WORK/out" 2>/dev/null || ! : >"$WORK/err" 2>/dev/null; then
      fail "$id" no-work-dir
      continue
    fi
    ms=$((tmo % 1000))
    case ${#ms} in 1) ms=00$ms ;; 2) ms=0$ms ;; esac
    secs=$((tmo / 1000)).$ms
    setsid sh -c "$cmd" </dev/null >"$WORK/out" 2>"$WORK/err" &
    pid=$!
    # The watchdog: a session of its own (so that killing it takes its sleep too) that marks
    # the timeout and kills the command's session when the time is up.
    wd=
    if [ "$tmo" -gt 0 ]; then
      setsid sh -c 'sleep "$1" && : >"$2/timedout" && { kill -KILL "-$3" 2>/dev/null || kill -KILL "$3"; kill -KILL "-$3"; }' \
        watchdog "$secs" "$WORK" "$pid" </dev/null >/dev/null 2>&1 &
      wd=$!
    fi
    wait "$pid"
    code=$?
    if [ -n "$wd" ]; then
      kill_session TERM "$wd"
      wait "$wd"
    fi
    status=$code
    [ -e "$WORK/timedout" ] && status=T
    # What is sent is copied first: a background child of the command may still append to out.
    head -c "$cap" "$WORK/out" >"$WORK/out.sent" 2>/dev/null
    head -c "$cap" "$WORK/err" >"$WORK/err.sent" 2>/dev/null
    set -- $(stat -c %s "$WORK/out.sent" "$WORK/err.sent" "$WORK/out" "$WORK/err" 2>/dev/null)
    if [ "$#" -ne 4 ]; then
      fail "$id" no-output
      continue
    fi
    osent=$1 esent=$2 osize=$3 esize=$4
    [ "$osize" -lt "$osent" ] && osize=$osent
    [ "$esize" -lt "$esent" ] && esize=$esent
    printf 'R %s %s %s %s %s %s\n' "$id" "$status" "$osize" "$esize" "$osent" "$esent"
    cat "$WORK/out.sent" "$WORK/err.sent"
  done
}

# The agent port's name under /sys/class/virtio-ports (vportNpM), or nothing.
find_port() {
  for f in "$SYSFS"/class/virtio-ports/*/name; do
    [ -r "$f" ] || continue
    n=
    IFS= read -r n <"$f" 2>/dev/null
    if [ "$n" = "$PORT_NAME" ]; then
      p=${f%/name}
      echo "${p##*/}"
      return 0
    fi
  done
  return 1
}

start() {
  [ -d "$SYSFS/class" ] || mount -t sysfs sysfs "$SYSFS" 2>/dev/null || return 1
  tries=0
  while :; do
    port=$(find_port)
    if [ -z "$port" ]; then
      set -- "$SYSFS"/bus/virtio/drivers/virtio_console/virtio*
      [ -e "$1" ] || return 0
      tries=$((tries + 1))
      [ "$tries" -gt 100 ] && return 0
      sleep 0.2
      continue
    fi
    dev=/dev/$port
    if [ ! -c "$dev" ]; then
      # (A node that appeared meanwhile, as when /init mounts devtmpfs on /dev, is as good.)
      IFS=: read -r major minor <"$SYSFS/class/virtio-ports/$port/dev" && { mknod "$dev" c "$major" "$minor" 2>/dev/null || [ -c "$dev" ]; } || return 1
    fi
    (serve) <>"$dev" >&0 2>/dev/null
    tries=0
    sleep 1
  done
}

case ${1:-} in
  --stdio) serve ;;
  '') start ;;
  *)
    echo "usage: tsvmm-agent [--stdio]" >&2
    exit 2
    ;;
esac
