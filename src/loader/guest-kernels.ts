/**
 * Finding the guests scripts/fetch-guest-kernel.sh put in the git-ignored cache (.cache/guests/,
 * or $TSVMM_GUESTS_DIR): Debian's bzImage, the vmlinux cut from it, the kernel's module tree
 * (lib/modules/<release>/ of its package), and a static busybox.
 * For tests and tools; undefined when the script has not been run.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/src/loader/). */
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const FETCH_GUEST_KERNEL_SCRIPT = 'scripts/fetch-guest-kernel.sh';

export function guestCacheDir(): string {
  return process.env['TSVMM_GUESTS_DIR'] ?? join(REPO_ROOT, '.cache', 'guests');
}

/** guests.env: KEY=path lines, paths relative to the cache directory (KERNEL_VERSION is a value). */
function readManifest(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  const file = join(dir, 'guests.env');
  if (!existsSync(file)) return m;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) m.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return m;
}

function cachedPath(key: string): string | undefined {
  const dir = guestCacheDir();
  const rel = readManifest(dir).get(key);
  if (rel === undefined) return undefined;
  const path = join(dir, rel);
  return existsSync(path) ? path : undefined;
}

export interface GuestKernel {
  /** The bzImage. */
  vmlinuz: string;
  /** Kernel release, e.g. 6.1.0-56-amd64. */
  version: string;
  /** The uncompressed vmlinux ELF, when the script could extract it. */
  vmlinux?: string;
}

/** The cached Debian kernel, or undefined (run scripts/fetch-guest-kernel.sh). */
export function findGuestKernel(): GuestKernel | undefined {
  const dir = guestCacheDir();
  const manifest = readManifest(dir);
  const vmlinuz = cachedPath('VMLINUZ');
  const version = manifest.get('KERNEL_VERSION');
  if (vmlinuz && version) {
    const vmlinux = cachedPath('VMLINUX');
    return vmlinux ? { vmlinuz, version, vmlinux } : { vmlinuz, version };
  }
  // No manifest (an interrupted run): look for an extracted package.
  if (!existsSync(dir)) return undefined;
  for (const pkg of readdirSync(dir).filter((n) => n.startsWith('linux-image-')).sort().reverse()) {
    const release = pkg.slice('linux-image-'.length);
    const path = join(dir, pkg, 'boot', `vmlinuz-${release}`);
    if (existsSync(path)) return { vmlinuz: path, version: release };
  }
  return undefined;
}

/** The cached static busybox, or undefined. */
export function findGuestBusybox(): string | undefined {
  return cachedPath('BUSYBOX');
}

/**
 * The cached kernel's module tree (lib/modules/<release>/ of the extracted package, holding
 * kernel/), or undefined.
 */
export function findGuestModules(): string | undefined {
  const kernel = findGuestKernel();
  if (!kernel) return undefined;
  const dir = join(dirname(dirname(kernel.vmlinuz)), 'lib', 'modules', kernel.version);
  return existsSync(join(dir, 'kernel')) ? dir : undefined;
}
