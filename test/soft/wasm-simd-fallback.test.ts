// The soft CPU where the engine has no WebAssembly SIMD (V8 on an x86 CPU without SSE4.1, such
// as QEMU's qemu64 model): jit-wasm.ts's hub needs v128, so hot code must go to jit.ts instead of
// failing with "CompileError: Wasm SIMD unsupported". `node --no-enable-sse4-1` makes V8 behave
// as on such a CPU here; the nested KVM run (scripts/kvm-nested.sh) also meets it for real.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { needsNasm } from '../helpers/nasm.js';
import { REPO_ROOT, TSVMM_BIN } from '../helpers/tools.js';

const NO_SIMD = '--no-enable-sse4-1';

function node(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [NO_SIMD, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 240_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function flagMissing(): string | undefined {
  const r = node(['-e', '0']);
  return r.status === 0 ? undefined : `this node has no V8 flag ${NO_SIMD}: ${r.out.trim()}`;
}

test('without WebAssembly SIMD the soft CPU compiles with jit.ts (jitKind js)', (t) => {
  const why = flagMissing();
  if (why) return t.skip(why);
  const probe = `const w = await import('./dist/src/backends/soft/jit-wasm.js'); const s = await import('./dist/src/backends/soft/soft-backend.js');
    console.log(JSON.stringify({ simd: w.wasmSimd(), kind: s.SoftBackend.open().jitKind }));`;
  const r = node(['--input-type=module', '-e', probe], { TSVMM_SOFT_JIT_KIND: 'wasm' });
  assert.equal(r.status, 0, r.out);
  assert.deepEqual(JSON.parse(r.out), { simd: false, kind: 'js' });
});

test('without WebAssembly SIMD the libnvmm suite passes on soft with every block compiled', needsNasm, (t) => {
  const why = flagMissing();
  if (why) return t.skip(why);
  // TSVMM_SOFT_JIT=0 compiles each block before its first execution: the 64-bit cases reach the compiler.
  const r = node([TSVMM_BIN, 'selftest', '--accel', 'soft'], { TSVMM_SOFT_JIT: '0' });
  assert.match(r.out, /^41 passed, 0 failed$/m, r.out.slice(-3000));
  assert.doesNotMatch(r.out, /SIMD/);
  assert.equal(r.status, 0);
});
