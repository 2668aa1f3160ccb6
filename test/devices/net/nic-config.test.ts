import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TsvmmError } from '../../../src/common/errors.js';
import {
  checkNics, defaultMac, macBytes, parseHostForward, parseMac, parseNicOption, type NicConfig,
} from '../../../src/devices/net/nic-config.js';

function usageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_USAGE' && pattern.test(e.message));
}

test('default MACs: stable, locally administered, unicast, one per NIC number', () => {
  assert.equal(defaultMac(0), '02:74:73:76:6d:00');
  assert.equal(defaultMac(17), '02:74:73:76:6d:11');
  assert.equal(defaultMac(255), '02:74:73:76:6d:ff');
  const b = macBytes(defaultMac(3));
  assert.equal(b[0]! & 0b11, 0b10, 'locally administered (bit 1), unicast (bit 0 clear)');
  usageError(() => defaultMac(256), /NIC number 256/);
  usageError(() => defaultMac(-1), /NIC number -1/);
});

test('MAC addresses: canonical lower case; multicast, all-zero and malformed ones refused', () => {
  assert.equal(parseMac('52:54:00:AB:cd:0F'), '52:54:00:ab:cd:0f');
  assert.deepEqual([...macBytes('52:54:00:ab:cd:0f')], [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
  usageError(() => parseMac('01:00:5e:00:00:01'), /multicast/);
  usageError(() => parseMac('ff:ff:ff:ff:ff:ff'), /multicast/);
  usageError(() => parseMac('00:00:00:00:00:00'), /all zeros/);
  for (const bad of ['52:54:00:ab:cd', '52-54-00-ab-cd-0f', '52:54:00:ab:cd:0g', '5254.00ab.cd0f', '52:54:00:ab:cd:0f:00', '', ' 52:54:00:ab:cd:0f']) {
    usageError(() => parseMac(bad), /six hexadecimal pairs/);
  }
});

test('--nic user: defaults, mac=, hostfwd= repeated (tcp default, udp, host address)', () => {
  assert.deepEqual(parseNicOption('user', 0), { kind: 'user', mac: '02:74:73:76:6d:00', hostForwards: [] });
  const nic = parseNicOption('user,mac=52:54:00:12:34:56,hostfwd=tcp::2222-:22,hostfwd=:127.0.0.1:8080-:80,hostfwd=udp:[::1]:5353-:53', 4);
  assert.deepEqual(nic, {
    kind: 'user',
    mac: '52:54:00:12:34:56',
    hostForwards: [
      { protocol: 'tcp', hostAddress: null, hostPort: 2222, guestPort: 22 },
      { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 },
      { protocol: 'udp', hostAddress: '::1', hostPort: 5353, guestPort: 53 },
    ],
  });
  assert.equal((parseNicOption('user', 4) as NicConfig).mac, '02:74:73:76:6d:04');
});

test('hostfwd: malformed specs, ports out of range, a guest address, a bad host address: TSVMM_USAGE naming the part', () => {
  usageError(() => parseHostForward('tcp::0-:22'), /host port '0'/);
  usageError(() => parseHostForward('tcp::65536-:22'), /host port '65536'/);
  usageError(() => parseHostForward('tcp::22-:x'), /guest port 'x'/);
  usageError(() => parseHostForward('tcp::-:22'), /host port ''/);
  usageError(() => parseHostForward('tcp::2222-10.0.2.15:22'), /leave the guest address empty/);
  usageError(() => parseHostForward('tcp:999.1.1.1:2222-:22'), /host address '999.1.1.1'/);
  usageError(() => parseHostForward('tcp:[zz]:2222-:22'), /host address '\[zz\]'/);
  usageError(() => parseHostForward('sctp::2222-:22'), /is not \[tcp\|udp\]/);
  usageError(() => parseHostForward('2222-:22'), /is not \[tcp\|udp\]/);
  usageError(() => parseHostForward('tcp::2222:22'), /is not \[tcp\|udp\]/);
});

test('--nic tap: ifname required and checked as Linux does; mac=', () => {
  assert.deepEqual(parseNicOption('tap,ifname=tap0', 1), { kind: 'tap', mac: '02:74:73:76:6d:01', ifname: 'tap0' });
  assert.deepEqual(parseNicOption('tap,mac=02:00:00:00:00:09,ifname=tsvmm-tap.15', 0), { kind: 'tap', mac: '02:00:00:00:00:09', ifname: 'tsvmm-tap.15' });
  usageError(() => parseNicOption('tap', 0), /needs ifname=NAME/);
  for (const bad of ['a/b', 'a:b', 'a b', '.', '..', 'sixteen-bytes-xx']) usageError(() => parseNicOption(`tap,ifname=${bad}`, 0), /not a valid Linux interface name/);
  assert.equal((parseNicOption('tap,ifname=fifteen-bytes-x', 0) as { ifname: string }).ifname, 'fifteen-bytes-x');
});

test('--nic refusals: unknown kind, unknown or valueless option, an option twice, hostfwd on tap, a host port twice', () => {
  usageError(() => parseNicOption('bridge,br=br0', 0), /'user' \(passt\) or 'tap', not 'bridge'/);
  usageError(() => parseNicOption('', 0), /not ''/);
  usageError(() => parseNicOption('user,model=e1000', 0), /unknown option 'model' \(it takes mac, hostfwd\)/);
  usageError(() => parseNicOption('user,mac', 0), /mac= needs a value/);
  usageError(() => parseNicOption('user,mac=', 0), /mac= needs a value/);
  usageError(() => parseNicOption('user,mac=02:00:00:00:00:01,mac=02:00:00:00:00:02', 0), /given twice/);
  usageError(() => parseNicOption('tap,ifname=a,ifname=b', 0), /given twice/);
  usageError(() => parseNicOption('tap,ifname=a,hostfwd=tcp::1-:1', 0), /unknown option 'hostfwd'/);
  usageError(() => parseNicOption('user,hostfwd=tcp::80-:80,hostfwd=tcp::80-:81', 0), /port 80 is forwarded twice/);
  assert.equal((parseNicOption('user,hostfwd=tcp::80-:80,hostfwd=udp::80-:80', 0) as { hostForwards: unknown[] }).hostForwards.length, 2, 'tcp and udp ports differ');
});

test('checkNics: no MAC, TAP interface or forwarded host port shared by two NICs', () => {
  const nics = ['user,hostfwd=tcp::2222-:22', 'tap,ifname=tap0'].map(parseNicOption);
  checkNics(nics);
  usageError(() => checkNics([...nics, parseNicOption('tap,ifname=tap1,mac=02:74:73:76:6d:00', 2)]), /two NICs have the MAC address 02:74:73:76:6d:00/);
  usageError(() => checkNics([...nics, parseNicOption('tap,ifname=tap0', 2)]), /TAP interface tap0/);
  usageError(() => checkNics([...nics, parseNicOption('user,hostfwd=tcp:127.0.0.1:2222-:80', 2)]), /tcp port 2222 is forwarded by two NICs/);
});
