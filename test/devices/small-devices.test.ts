import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DebugExit, PortBus, Port80 } from '../../src/devices/index.js';

test('debug-exit: a write of V exits with (V << 1) | 1', () => {
  const statuses: number[] = [];
  const dev = new DebugExit({ onExit: (s) => statuses.push(s) });
  const bus = new PortBus();
  bus.register(0x501, 1, 'debug-exit', dev);
  bus.write(0x501, 1, 0x00);
  bus.write(0x501, 1, 0x10);
  bus.access({ port: 0x501, in: false, size: 2, data: Uint8Array.of(0x34, 0x12) });
  bus.write(0x501, 4, 0xffff_ffff);
  assert.deepEqual(statuses, [1, 0x21, 0x2469, 0x1_ffff_ffff]);
  assert.equal(bus.read(0x501, 1), 0xff);
});

test('port 0x80 remembers the last POST code', () => {
  const dev = new Port80();
  assert.equal(dev.read(0, 1), 0);
  dev.write(0, 1, 0x1234);
  assert.equal(dev.read(0, 1), 0x34);
  assert.equal(dev.value, 0x34);
  dev.write(0, 4, 0xdead_beef);
  assert.equal(dev.read(0, 2), 0xbeef);
  assert.equal(dev.read(0, 4), 0xdead_beef);
  const copy = new Port80();
  copy.restore(dev.getState());
  assert.equal(copy.read(0, 4), 0xdead_beef);
});
