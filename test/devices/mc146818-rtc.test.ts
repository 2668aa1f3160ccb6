import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mc146818Rtc } from '../../src/devices/mc146818-rtc.js';

const INDEX = 0, DATA = 1; // ports 0x70, 0x71
const SEC = 0x00, MIN = 0x02, HOUR = 0x04, DOW = 0x06, DOM = 0x07, MON = 0x08, YEAR = 0x09;
const A = 0x0a, B = 0x0b, C = 0x0c, D = 0x0d, CENTURY = 0x32;
const TIME_REGS = [SEC, MIN, HOUR, DOW, DOM, MON, YEAR, CENTURY];

function setup(start: number) {
  let t = start;
  const rtc = new Mc146818Rtc({ now: () => new Date(t) });
  const cmos = (i: number): number => { rtc.write(INDEX, 1, i); return rtc.read(DATA, 1); };
  const setCmos = (i: number, v: number): void => { rtc.write(INDEX, 1, i); rtc.write(DATA, 1, v); };
  return { rtc, cmos, setCmos, advance: (ms: number) => { t += ms; }, setTime: (ms: number) => { t = ms; } };
}

// Thursday 29 February 2024, 13:05:09.500 UTC.
const LEAP_DAY = Date.UTC(2024, 1, 29, 13, 5, 9, 500);

test('time registers in BCD, 24-hour mode (the power-on format)', () => {
  const { cmos } = setup(LEAP_DAY);
  assert.equal(cmos(B), 0x02);
  assert.deepEqual(TIME_REGS.map(cmos), [0x09, 0x05, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
});

test('time registers in binary when register B DM is set', () => {
  const { cmos, setCmos } = setup(LEAP_DAY);
  setCmos(B, 0x06);
  assert.deepEqual(TIME_REGS.map(cmos), [9, 5, 13, 5, 29, 2, 24, 20]);
});

test('12-hour mode: PM in bit 7, midnight and noon are 12', () => {
  const { cmos, setCmos, setTime } = setup(LEAP_DAY);
  setCmos(B, 0x00); // BCD, 12-hour
  assert.equal(cmos(HOUR), 0x81); // 1 PM
  setTime(Date.UTC(2024, 0, 1, 0, 30));
  assert.equal(cmos(HOUR), 0x12); // 12 AM
  setTime(Date.UTC(2024, 0, 1, 12, 30));
  assert.equal(cmos(HOUR), 0x92); // 12 PM
  setCmos(B, 0x04); // binary, 12-hour
  assert.equal(cmos(HOUR), 0x8c);
  setTime(Date.UTC(2024, 0, 1, 11, 0));
  assert.equal(cmos(HOUR), 11);
});

test('the clock follows the injected time', () => {
  const { cmos, advance } = setup(LEAP_DAY);
  advance(10 * 3600_000 + 55 * 60_000); // 00:00:09 on 1 March
  assert.deepEqual([HOUR, MIN, SEC, DOM, MON, DOW].map(cmos), [0x00, 0x00, 0x09, 0x01, 0x03, 0x06]);
});

test('SET freezes the registers for loading; clearing it restarts from the loaded time', () => {
  const { cmos, setCmos, advance } = setup(LEAP_DAY);
  setCmos(B, 0x82 | 0x10); // SET with UIE: SET clears UIE
  assert.equal(cmos(B), 0x82);
  advance(5000);
  assert.equal(cmos(SEC), 0x09); // frozen
  // Load 1999-12-31 23:59:58.
  for (const [reg, v] of [[SEC, 0x58], [MIN, 0x59], [HOUR, 0x23], [DOM, 0x31], [MON, 0x12], [YEAR, 0x99], [CENTURY, 0x19]] as const) setCmos(reg, v);
  setCmos(B, 0x02);
  assert.deepEqual([CENTURY, YEAR, MON, DOM, HOUR, MIN, SEC].map(cmos), [0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58]);
  advance(2000); // 23:59:58.500 (the sub-second phase of the freeze is kept) + 2 s
  assert.deepEqual([CENTURY, YEAR, MON, DOM, HOUR, MIN, SEC, DOW].map(cmos), [0x20, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x07]);
});

test('a time register written while running takes effect at once', () => {
  const { cmos, setCmos, advance } = setup(LEAP_DAY);
  setCmos(MIN, 0x42);
  assert.deepEqual([HOUR, MIN, SEC].map(cmos), [0x13, 0x42, 0x09]);
  advance(1000);
  assert.deepEqual([HOUR, MIN, SEC].map(cmos), [0x13, 0x42, 0x10]);
});

test('register A: UIP only in the last 2 ms of a second, divider bits writable; C clears, D has VRT', () => {
  const { cmos, setCmos, setTime, rtc } = setup(LEAP_DAY);
  assert.equal(cmos(A), 0x26);
  setTime(Date.UTC(2024, 1, 29, 13, 5, 9, 999));
  assert.equal(cmos(A), 0xa6);
  setTime(Date.UTC(2024, 1, 29, 13, 5, 10, 0));
  assert.equal(cmos(A), 0x26);
  setCmos(A, 0xff); // UIP is read-only
  assert.equal(rtc.getRam(A), 0x7f);
  setTime(Date.UTC(2024, 1, 29, 13, 5, 9, 999));
  assert.equal(cmos(A), 0x7f); // divider not in the running state: no update cycles
  assert.equal(cmos(C), 0x00);
  setCmos(D, 0x00);
  assert.equal(cmos(D), 0x80);
});

test('index register: bit 7 (NMI disable) is masked off the index, reads float', () => {
  const { rtc, cmos, setCmos } = setup(LEAP_DAY);
  setCmos(0x40, 0x5a);
  rtc.write(INDEX, 1, 0xc0); // NMI disable + index 0x40
  assert.equal(rtc.nmiMasked, true);
  assert.equal(rtc.read(DATA, 1), 0x5a);
  assert.equal(rtc.read(INDEX, 1), 0xff);
  rtc.write(INDEX, 1, 0x80); // NMI disable + seconds
  assert.equal(rtc.read(DATA, 1), 0x09);
  assert.equal(cmos(0x7f), 0x00);
});

test('memory-size bytes as SeaBIOS reads them', () => {
  const small = setup(LEAP_DAY);
  small.rtc.setMemorySize(32 * 1024 * 1024);
  assert.deepEqual([0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5b, 0x5c, 0x5d].map(small.cmos),
    [0x80, 0x02, 0x00, 0x7c, 0x00, 0x7c, 0x00, 0x01, 0x00, 0x00, 0x00]);
  assert.deepEqual([0x2e, 0x2f].map(small.cmos), [0x00, 0xfe]); // checksum of 0x10-0x2d
  const big = setup(LEAP_DAY);
  big.rtc.setMemorySize(6 * 1024 ** 3, 3 * 1024 ** 3);
  big.rtc.setCpuCount(4);
  assert.deepEqual([0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5b, 0x5c, 0x5d, 0x5f].map(big.cmos),
    [0x80, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00, 0xbf, 0x00, 0xc0, 0x00, 0x03]);
});

test('getState/restore keeps the RAM, and the guest clock continues from the time it was saved at', () => {
  const a = setup(LEAP_DAY);
  a.setCmos(HOUR, 0x01); // guest sets its clock 12 hours back
  a.setCmos(0x50, 0xab);
  const state = a.rtc.getState();
  // Restored a minute later by the clock it is given: it goes on from the saved time, as every
  // guest clock does across a save (the skipped time is not the guest's).
  const b = setup(LEAP_DAY + 60_000);
  b.rtc.restore(structuredClone(state));
  assert.deepEqual([HOUR, MIN, SEC].map(b.cmos), [0x01, 0x05, 0x09]);
  assert.equal(b.cmos(0x50), 0xab);
  // A state without the saved time keeps the offset to the clock.
  const { timeMs: _time, ...offsetOnly } = structuredClone(state);
  const c = setup(LEAP_DAY + 60_000);
  c.rtc.restore(offsetOnly);
  assert.deepEqual([HOUR, MIN, SEC].map(c.cmos), [0x01, 0x06, 0x09]);
});
