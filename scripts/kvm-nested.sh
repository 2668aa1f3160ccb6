#!/usr/bin/env bash
# The kvm backend's tests on a real /dev/kvm, where this machine has none: QEMU's TCG emulates AMD
# SVM with nested paging, a Debian guest under it loads the kvm modules of the cached Debian
# kernel, and tsvmm's KVM tests run inside (test/kvm-nested/run.ts says which). Prints one line per
# test and a closing "kvm-nested: N passed, N failed, N skipped"; exits non-zero when one failed.
# Skips (exit 0, with the reason) only where QEMU is missing or emulates neither SVM nor VMX.
# Needs qemu-system-x86, nasm and the guest cache (scripts/fetch-guest-kernel.sh).
# Usage: scripts/kvm-nested.sh [--no-build] [--only max|qemu64] [--memory SIZE] [--log-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null
if [ "${1:-}" = --no-build ]; then
  shift
else
  npx tsc -p .
fi
exec node dist/test/kvm-nested/run.js "$@"
