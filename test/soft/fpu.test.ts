// x87/SSE on the soft CPU: MXCSR rounding, FXSAVE/FXRSTOR round trip, x87 stack and tags, #NM with
// CR0.TS, #UD with CR4.OSFXSR clear (guests/soft/fpu.asm, in real mode).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { CR, GPR, STATE } from '../../src/nvmm/state.js';
import { enterReal16, stepOverIo, withRamMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

test('soft CPU: SSE rounding modes, FXSAVE/FXRSTOR, x87 stack, #NM on CR0.TS, #UD without CR4.OSFXSR', needsNasm, () => {
  const image = guestImage('soft/fpu.asm');
  withRamMachine(SoftBackend.open(), 1 << 20, ({ vcpu, ram, view: dv }) => {
    ram.set(image, 0x8000);
    const sym = (needle: number[]) => { // locate the handlers by their first bytes (mov al, n; out 0xe0, al)
      for (let k = 0; k < image.length; k++) if (needle.every((b, j) => image[k + j] === b)) return 0x8000 + k;
      throw new Error('handler not found');
    };
    dv.setUint16(6 * 4, sym([0xb0, 6, 0xe6, 0xe0]), true); dv.setUint16(6 * 4 + 2, 0, true);
    dv.setUint16(7 * 4, sym([0xb0, 7, 0xe6, 0xe0]), true); dv.setUint16(7 * 4 + 2, 0, true);
    const s = enterReal16(vcpu, 0x8000);
    s.gprs[GPR.RSP] = 0x7000n;
    s.crs[CR.CR0] = 0x60000030n | 2n; // ET NE MP
    s.crs[CR.CR4] = 0x600n; // OSFXSR OSXMMEXCPT
    vcpu.setState(STATE.ALL);
    const step = (): number[] => {
      const codes: number[] = [];
      for (;;) {
        const exit = vcpu.run();
        if (exit.kind === 'io' && !exit.in) {
          const gprs = stepOverIo(vcpu, exit);
          if (exit.port === 0xe1) return codes;
          codes.push(Number(gprs[GPR.RAX]! & 0xffn));
          continue;
        }
        if (exit.kind === 'halted') return codes;
        assert.fail(`unexpected exit ${exit.kind}`);
      }
    };
    assert.deepEqual(step(), []);
    const f = vcpu.getState(STATE.FPU).fpu;
    const x = (r: number) => Array.from(new Int32Array(f.xmms.slice(16 * r, 16 * r + 16).buffer));
    assert.deepEqual(x(2), [2, -2, 2, 4], 'CVTPS2DQ rounds to nearest even');
    assert.deepEqual(x(3), [1, -3, 2, 3], 'CVTPS2DQ under MXCSR.RC = down');
    assert.deepEqual(Array.from(new Float32Array(f.xmms.slice(16, 32).buffer)), [1.5, -2.5, 2.5, 3.5], 'FXRSTOR restores XMM1');
    assert.equal(f.mxcsr, 0x1f80);
    // After FXRSTOR and FSTP: ST0 = 1.0 remains, TOP = 7, only physical register 7 valid.
    assert.equal((f.fsw >> 11) & 7, 7);
    assert.equal(f.ftw, 0x80);
    assert.deepEqual(Array.from(f.sts.slice(0, 10)), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f], 'ST0 = 1.0 (80-bit)');
    // FSTP m80 wrote pi exactly (the 80-bit constant).
    const find = (bytes: number[]) => { for (let k = 0x8000; k < 0x8000 + image.length + 16; k++) if (bytes.every((b, j) => ram[k + j] === b)) return k; return -1; };
    assert.ok(find([0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40]) > 0, 'FSTP m80 of FLDPI gives the exact 80-bit pi');
    // FXSAVE layout: FCW 0x37f at +0, abridged tag 0xC0 (R6, R7 valid) at +4, MXCSR at +24, ST0 = pi at +32.
    const fx = find([0x7f, 0x03, 0x00, 0x30, 0xc0]);
    assert.ok(fx > 0, 'FXSAVE image: FCW, FSW with TOP = 6, abridged FTW = 0xC0');
    assert.equal(dv.getUint32(fx + 24, true), 0x1f80);
    assert.equal(dv.getUint32(fx + 28, true), 0xffff);
    assert.deepEqual(Array.from(ram.slice(fx + 32, fx + 42)), [0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40]);
    assert.deepEqual(Array.from(ram.slice(fx + 48, fx + 58)), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
    // Step 2: CR0.TS -> #NM.
    const c = vcpu.getState(STATE.CRS);
    c.crs[CR.CR0] = c.crs[CR.CR0]! | 8n;
    vcpu.setState(STATE.CRS);
    assert.deepEqual(step(), [7]);
    // Step 3: CR4.OSFXSR clear -> #UD (TS cleared again).
    const g = vcpu.getState(STATE.GPRS | STATE.CRS);
    g.crs[CR.CR0] = g.crs[CR.CR0]! & ~8n;
    g.crs[CR.CR4] = 0n;
    vcpu.setState(STATE.CRS);
    // Resume after the #NM step: RIP is in the #NM handler's HLT; jump to the ADDPS (0F 58 C1).
    const addps = image.findIndex((b, k) => b === 0x0f && image[k + 1] === 0x58 && image[k + 2] === 0xc1);
    g.gprs[GPR.RIP] = BigInt(0x8000 + addps);
    vcpu.setState(STATE.GPRS);
    assert.deepEqual(step(), [6]);
  });
});
