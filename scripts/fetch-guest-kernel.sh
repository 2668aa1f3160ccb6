#!/usr/bin/env bash
# Fetches the guests the loader and boot tests use into the git-ignored cache .cache/guests/
# (or $TSVMM_GUESTS_DIR, which src/loader/guest-kernels.ts honours too):
#   - Debian's amd64 kernel (the package the metapackage linux-image-amd64 depends on), extracted
#     with dpkg-deb -x; boot/vmlinuz-* is the bzImage, lib/modules/<release>/kernel/ its modules
#     (what `tsvmm initramfs --modules` takes by default; an extraction without them is redone);
#   - vmlinux: the ELF inside that bzImage, cut out at the header's payload_offset/payload_length
#     and decompressed with xz (skipped with a warning when xz is absent);
#   - busybox-static's /bin/busybox.
# Then writes .cache/guests/guests.env (KEY=path lines, paths relative to .cache/guests/) and prints
# the absolute paths. Idempotent: when guests.env and its files exist, it only prints them.
# No root needed (apt-get download); as root it runs `apt-get update` once if apt has no lists.
# Non-interactive: never reads stdin (CI=true).
set -euo pipefail
exec </dev/null
export DEBIAN_FRONTEND=noninteractive

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${TSVMM_GUESTS_DIR:-$ROOT/.cache/guests}"
MANIFEST="$CACHE/guests.env"

say() { printf '%s\n' "$*"; }
die() { printf 'fetch-guest-kernel: %s\n' "$*" >&2; exit 1; }

print_manifest() {
  local key rel
  while IFS='=' read -r key rel; do
    [ -n "$key" ] || continue
    case "$key" in
      KERNEL_VERSION) say "$key=$rel" ;;
      *) say "$key=$CACHE/$rel" ;;
    esac
  done <"$MANIFEST"
}

manifest_complete() {
  [ -f "$MANIFEST" ] || return 1
  local key rel
  while IFS='=' read -r key rel; do
    [ -n "$key" ] || continue
    [ "$key" = KERNEL_VERSION ] && continue
    [ -s "$CACHE/$rel" ] || return 1
  done <"$MANIFEST"
  grep -q '^VMLINUZ=' "$MANIFEST" && grep -q '^BUSYBOX=' "$MANIFEST" || return 1
  # The module tree beside the bzImage: <package>/lib/modules/<release>/kernel.
  local kver vmlinuz
  kver="$(sed -n 's/^KERNEL_VERSION=//p' "$MANIFEST")"
  vmlinuz="$(sed -n 's/^VMLINUZ=//p' "$MANIFEST")"
  [ -n "$kver" ] && [ -d "$CACHE/${vmlinuz%%/*}/lib/modules/$kver/kernel" ]
}

if manifest_complete; then
  print_manifest
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb od dd; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (this script expects a Debian host)"
done

# The kernel package the metapackage points at, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
PKG="$(kernel_package || true)"
if [ -z "$PKG" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "apt has no package lists for linux-image-amd64: running apt-get update" >&2
    apt-get update -qq
    PKG="$(kernel_package || true)"
  fi
  [ -n "$PKG" ] || die "cannot resolve linux-image-amd64 (run 'apt-get update' as root once)"
fi
KVER="${PKG#linux-image-}"

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# As root, apt-get download tries to drop to the _apt user; it cannot write here, so apt notes
# that it downloads unsandboxed. That is harmless for a file we only unpack.
chmod 0755 "$WORK"

# Downloads package $1 and extracts it into $CACHE/$1 (atomically: a half-done run leaves nothing).
fetch_package() {
  local pkg="$1" dest="$CACHE/$1"
  if [ -d "$dest" ]; then return 0; fi
  say "downloading $pkg" >&2
  (cd "$WORK" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
  local deb
  deb="$(ls "$WORK"/"${pkg}"_*.deb 2>/dev/null | head -n 1)"
  [ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
  rm -rf "$WORK/x" && mkdir "$WORK/x"
  dpkg-deb -x "$deb" "$WORK/x"
  rm -f "$deb"
  mv "$WORK/x" "$dest"
}

# An extraction without the module tree (a partial copy): extract the package again.
if [ -d "$CACHE/$PKG" ] && [ ! -d "$CACHE/$PKG/lib/modules/$KVER/kernel" ]; then
  say "$CACHE/$PKG has no lib/modules/$KVER/kernel: extracting $PKG again" >&2
  rm -rf "$CACHE/$PKG"
fi
fetch_package "$PKG"
VMLINUZ_REL="$PKG/boot/vmlinuz-$KVER"
[ -s "$CACHE/$VMLINUZ_REL" ] || die "$PKG has no boot/vmlinuz-$KVER"
[ -d "$CACHE/$PKG/lib/modules/$KVER/kernel" ] || die "$PKG has no lib/modules/$KVER/kernel"

fetch_package busybox-static
BUSYBOX_REL="busybox-static/bin/busybox"
[ -s "$CACHE/$BUSYBOX_REL" ] || die "busybox-static has no bin/busybox"

# vmlinux: the payload starts payload_offset bytes into the protected-mode part, which begins
# after (setup_sects or 4, when 0) + 1 sectors of 512 bytes.
u8_at() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u32_at() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
VMLINUX_REL="$PKG/vmlinux"
if [ ! -s "$CACHE/$VMLINUX_REL" ]; then
  if command -v xz >/dev/null 2>&1; then
    z="$CACHE/$VMLINUZ_REL"
    sects="$(u8_at "$z" $((0x1f1)))"
    [ "$sects" = 0 ] && sects=4
    poff="$(u32_at "$z" $((0x248)))"
    plen="$(u32_at "$z" $((0x24c)))"
    start=$(((sects + 1) * 512 + poff))
    # The payload is an .xz stream followed by 4 bytes (the decompressed size): --single-stream
    # stops at the end of the stream.
    if dd if="$z" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$plen" status=none |
      xz -dc --single-stream >"$WORK/vmlinux" 2>"$WORK/xz.err" &&
      [ "$(head -c 4 "$WORK/vmlinux" | od -An -t x1 | tr -d ' ')" = 7f454c46 ]; then
      mv "$WORK/vmlinux" "$CACHE/$VMLINUX_REL"
    else
      say "warning: could not extract vmlinux from $z ($(cat "$WORK/xz.err")): not an xz payload?" >&2
      VMLINUX_REL=""
    fi
  else
    say "warning: xz not found (apt-get install xz-utils): no vmlinux extracted" >&2
    VMLINUX_REL=""
  fi
fi

{
  say "KERNEL_VERSION=$KVER"
  say "VMLINUZ=$VMLINUZ_REL"
  [ -n "$VMLINUX_REL" ] && say "VMLINUX=$VMLINUX_REL"
  say "BUSYBOX=$BUSYBOX_REL"
} >"$WORK/guests.env"
mv "$WORK/guests.env" "$MANIFEST"
print_manifest
