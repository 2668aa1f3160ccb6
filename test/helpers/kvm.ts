/** Opening KVM in tests: a test that needs it is skipped, with the stable reason, where it is unusable. */
import type { TestContext } from 'node:test';
import { KvmBackend } from '../../src/backends/kvm/kvm-backend.js';
import { TsvmmError } from '../../src/common/errors.js';

let cached: KvmBackend | TsvmmError | undefined;

/** Why KVM cannot be used here (`TSVMM_NO_KVM: ...`), or undefined when it can. */
export function kvmUnavailable(): string | undefined {
  if (cached === undefined) {
    try {
      cached = KvmBackend.open();
    } catch (e) {
      if (!(e instanceof TsvmmError)) throw e;
      cached = e;
    }
  }
  return cached instanceof TsvmmError ? `${cached.code}: ${cached.message}` : undefined;
}

/** The KVM backend, or undefined after skipping `t` with the reason. */
export function kvmOrSkip(t: TestContext): KvmBackend | undefined {
  const why = kvmUnavailable();
  if (why) {
    t.skip(why);
    return undefined;
  }
  return cached as KvmBackend;
}

/**
 * Set by the nested-KVM run's outer init (test/kvm-nested/outer-init.sh): the "hardware" under this
 * KVM is QEMU's TCG emulating AMD SVM. Tests of what that emulation does not do skip there, with
 * the reason, and run on every real KVM host.
 */
export const KVM_ON_QEMU_TCG = process.env.TSVMM_TEST_KVM_ON_QEMU_TCG === '1';
