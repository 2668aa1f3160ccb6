// The machine's configuration (vmm/config.ts): its defaults, each check with its stable code and a
// message that names the value and the limit, and that what it returns crosses into the board's
// thread unchanged (a structured clone of it is equal to it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { defaultKernelCacheDir } from '../../src/loader/kernel-cache.js';
import { ConfigError, DEFAULT_MEMORY, MAX_BOARD_NICS, MAX_CPUS, MAX_DRIVES, MAX_MEMORY, MAX_TIMEOUT_MS, MIN_MEMORY, machineConfig, type MachineConfig, type MachineOptions } from '../../src/vmm/config.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';

const kernel = '/boot/vmlinuz';

test('config: the defaults, and nothing more than what was given', () => {
  assert.deepEqual(machineConfig({ kernel }), {
    kernel, cmdline: '', memory: DEFAULT_MEMORY, cpus: 1, accel: 'auto', pvh: false, kernelCache: false, inlineDevices: true,
    console: 'serial', rng: false, agent: false,
  } satisfies MachineConfig);
  // A drive is read-write unless it says otherwise; no serial unless given.
  assert.deepEqual(machineConfig({ kernel, drives: [{ file: '/a.img' }] as MachineConfig['drives'] }).drives, [{ file: '/a.img', readonly: false }]);
  assert.equal(DEFAULT_MEMORY, 256 << 20);
  // pvh keeps decompressed kernels in the per-user cache unless told otherwise.
  assert.equal(machineConfig({ kernel, pvh: true }).kernelCache, defaultKernelCacheDir());
  assert.equal(machineConfig({ kernel, pvh: true, kernelCache: false }).kernelCache, false);
  assert.equal(machineConfig({ kernel, pvh: true, kernelCache: '/tmp/k' }).kernelCache, '/tmp/k');
  // A network card without a MAC gets its number's; a forward is TCP on every host address unless told.
  assert.deepEqual(machineConfig({ kernel, nics: [{ kind: 'tap', ifname: 'tap0' }, { kind: 'user', hostForwards: [{ hostPort: 2222, guestPort: 22 }] }] }).nics, [
    { kind: 'tap', mac: '02:74:73:76:6d:00', ifname: 'tap0' },
    { kind: 'user', mac: '02:74:73:76:6d:01', hostForwards: [{ protocol: 'tcp', hostAddress: null, hostPort: 2222, guestPort: 22 }] },
  ]);
  // undefined is "not given".
  assert.equal(machineConfig({ kernel, memory: undefined, initrd: undefined }).memory, DEFAULT_MEMORY);
  assert.ok(!('initrd' in machineConfig({ kernel, initrd: undefined })));
});

test('config: every field given is kept as given; a config checks to itself; a structured clone is equal', () => {
  const full: MachineConfig = {
    kernel, initrd: '/boot/initrd', cmdline: 'console=ttyS0', memory: 7 * 2 ** 30 + 4096, cpus: MAX_CPUS, accel: 'soft', cpu: 'qemu64',
    pvh: true, kernelCache: '/var/cache/k', inlineDevices: false, timeoutMs: 2.5, traceCpu: 10, profile: { hz: 500, delayMs: 1.5 },
    drives: [{ file: '/a.img', readonly: true, serial: 'disk-0 (root)' }, { file: '/b.img', readonly: false }], console: 'virtio', rng: true, agent: true,
    nics: [
      { kind: 'user', mac: '52:54:00:12:34:56', hostForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 }, { protocol: 'udp', hostAddress: null, hostPort: 5353, guestPort: 53 }] },
      { kind: 'tap', mac: '02:74:73:76:6d:01', ifname: 'tsvmm0' },
    ],
  };
  assert.deepEqual(machineConfig(full), full);
  const flat: MachineOptions = { kernel, flat: { loadAddr: 0x8000, mode: 'long64' } };
  const config = machineConfig(flat);
  assert.deepEqual(machineConfig(config), config);
  assert.deepEqual(structuredClone(config), config);
  assert.deepEqual(structuredClone(machineConfig(full)), full);
});

test('config: what is not configuration is left out (it would not cross into the worker, or would cross as something else)', () => {
  const options = {
    kernel, profileGate: new SharedArrayBuffer(4), onLog: () => {},
    flat: { loadAddr: 0x8000, mode: 'real16', extra: () => {} },
    profile: { hz: 100, gate: new SharedArrayBuffer(4) },
  } as unknown as MachineOptions;
  const config = machineConfig(options);
  assert.deepEqual(config.flat, { loadAddr: 0x8000, mode: 'real16' });
  assert.deepEqual(config.profile, { hz: 100 });
  assert.ok(!('profileGate' in config) && !('onLog' in config));
  assert.doesNotThrow(() => structuredClone(config));
});

/** [what, options, code, message] */
const INVALID: [string, Record<string, unknown>, 'TSVMM_BAD_ARGUMENT' | 'TSVMM_LIMIT', RegExp][] = [
  ['no kernel', { kernel: undefined }, 'TSVMM_BAD_ARGUMENT', /^kernel is missing: the kernel image is required$/],
  ['an empty kernel path', { kernel: '' }, 'TSVMM_BAD_ARGUMENT', /^kernel '' is not a file name$/],
  ['a kernel that is not a path', { kernel: 3 }, 'TSVMM_BAD_ARGUMENT', /^kernel 3 is not a file name$/],
  ['an initrd that is not a path', { initrd: ['a'] }, 'TSVMM_BAD_ARGUMENT', /^initrd \(an array\) is not a file name$/],
  ['a command line that is not a string', { cmdline: 1 }, 'TSVMM_BAD_ARGUMENT', /^cmdline 1 is not a string$/],
  ['memory that is not a number', { memory: '256M' }, 'TSVMM_BAD_ARGUMENT', /^memory '256M' is not a number$/],
  ['memory NaN', { memory: NaN }, 'TSVMM_BAD_ARGUMENT', /^memory NaN is not a number$/],
  ['memory below 2 MiB', { memory: MIN_MEMORY - 4096 }, 'TSVMM_BAD_ARGUMENT', /^memory 2093056 is too small: at least 2097152 bytes \(2 MiB\)$/],
  ['negative memory', { memory: -4096 }, 'TSVMM_BAD_ARGUMENT', /is too small/],
  ['memory above 127 GiB', { memory: MAX_MEMORY + 4096 }, 'TSVMM_LIMIT', /^memory 136365215744 is too large: at most 136365211648 bytes \(127 GiB\)$/],
  ['infinite memory', { memory: Infinity }, 'TSVMM_LIMIT', /^memory Infinity is too large/],
  ['memory not in whole pages', { memory: MIN_MEMORY + 1 }, 'TSVMM_BAD_ARGUMENT', /^memory 2097153 is not a multiple of 4096 bytes \(4 KiB\)$/],
  ['memory not a whole number', { memory: MIN_MEMORY + 0.5 }, 'TSVMM_BAD_ARGUMENT', /is not a whole number$/],
  ['0 vCPUs', { cpus: 0 }, 'TSVMM_BAD_ARGUMENT', /^cpus 0 is too small: at least 1 vCPU$/],
  ['more vCPUs than the board takes', { cpus: MAX_CPUS + 1 }, 'TSVMM_LIMIT', /^cpus 65 is too large: at most 64 vCPUs \(the board's MP table and I\/O APIC id\)$/],
  ['a fraction of a vCPU', { cpus: 1.5 }, 'TSVMM_BAD_ARGUMENT', /^cpus 1.5 is not a whole number$/],
  ['an unknown accelerator', { accel: 'tcg' }, 'TSVMM_BAD_ARGUMENT', /^accel 'tcg' is not one of kvm, soft, auto$/],
  ['an unknown CPU model', { cpu: 'pentium' }, 'TSVMM_BAD_ARGUMENT', /^cpu 'pentium' is not one of /],
  ['a flat image that is not an object', { flat: 0x8000 }, 'TSVMM_BAD_ARGUMENT', /^flat 32768 is not an object$/],
  ['a flat image above 4 GiB', { flat: { loadAddr: 2 ** 32, mode: 'real16' } }, 'TSVMM_LIMIT', /^flat.loadAddr 4294967296 is too large: at most 0xffffffff \(flat images load below 4 GiB\)$/],
  ['a flat image at a negative address', { flat: { loadAddr: -1, mode: 'real16' } }, 'TSVMM_BAD_ARGUMENT', /^flat.loadAddr -1 is too small/],
  ['a flat image without its address', { flat: { mode: 'real16' } }, 'TSVMM_BAD_ARGUMENT', /^flat.loadAddr is not a number$/],
  ['an unknown entry mode', { flat: { loadAddr: 0, mode: 'real32' } }, 'TSVMM_BAD_ARGUMENT', /^flat.mode 'real32' is not one of real16, protected32, long64$/],
  ['a flat image with an initrd', { flat: { loadAddr: 0, mode: 'real16' }, initrd: '/i' }, 'TSVMM_BAD_ARGUMENT', /^initrd '\/i' cannot be given with a flat binary/],
  ['pvh that is not a boolean', { pvh: 'yes' }, 'TSVMM_BAD_ARGUMENT', /^pvh 'yes' is not true or false$/],
  ['a kernel cache that is neither a path nor false', { kernelCache: true }, 'TSVMM_BAD_ARGUMENT', /^kernelCache true is not a file name$/],
  ['inlineDevices that is not a boolean', { inlineDevices: 0 }, 'TSVMM_BAD_ARGUMENT', /^inlineDevices 0 is not true or false$/],
  ['a timeout of 0', { timeoutMs: 0 }, 'TSVMM_BAD_ARGUMENT', /^timeoutMs 0 is too small: it must be more than 0$/],
  ['a negative timeout', { timeoutMs: -1 }, 'TSVMM_BAD_ARGUMENT', /^timeoutMs -1 is too small/],
  ['a timeout setTimeout cannot wait', { timeoutMs: MAX_TIMEOUT_MS + 1 }, 'TSVMM_LIMIT', /^timeoutMs 2147483648 is too large: at most 2147483647 ms/],
  ['tracing 0 instructions', { traceCpu: 0 }, 'TSVMM_BAD_ARGUMENT', /^traceCpu 0 is too small: at least 1 instruction$/],
  ['tracing more instructions than a counter holds', { traceCpu: 2 ** 53 }, 'TSVMM_LIMIT', /^traceCpu 9007199254740992 is too large/],
  ['a profile that is not an object', { profile: true }, 'TSVMM_BAD_ARGUMENT', /^profile true is not an object$/],
  ['a profile rate of 0', { profile: { hz: 0 } }, 'TSVMM_BAD_ARGUMENT', /^profile.hz 0 is too small: at least 1 sample a second$/],
  ['a profile rate above the profiler\'s', { profile: { hz: 20_001 } }, 'TSVMM_LIMIT', /^profile.hz 20001 is too large: at most 20000 samples a second$/],
  ['a negative profile delay', { profile: { delayMs: -1 } }, 'TSVMM_BAD_ARGUMENT', /^profile.delayMs -1 is too small/],
  ['a profile delay of days on end', { profile: { delayMs: 1e9 + 1 } }, 'TSVMM_LIMIT', /^profile.delayMs 1000000001 is too large: at most 1000000000 ms/],
  ['drives that are not a list', { drives: { file: '/a' } }, 'TSVMM_BAD_ARGUMENT', /^drives \(an object\) is not an array$/],
  ['more drives than the board has slots', { drives: Array.from({ length: MAX_DRIVES + 1 }, (_, i) => ({ file: `/d${i}` })) }, 'TSVMM_LIMIT', /^drives has 17 disks: at most 16$/],
  ['a drive that is a path, not an object', { drives: ['/a.img'] }, 'TSVMM_BAD_ARGUMENT', /^drives\[0\] '\/a.img' is not an object$/],
  ['a drive without its file', { drives: [{ readonly: true }] }, 'TSVMM_BAD_ARGUMENT', /^drives\[0\].file is not a file name$/],
  ['a drive with an empty file name', { drives: [{ file: '/a' }, { file: '' }] }, 'TSVMM_BAD_ARGUMENT', /^drives\[1\].file '' is not a file name$/],
  ['one image as two drives', { drives: [{ file: '/a' }, { file: '/a' }] }, 'TSVMM_BAD_ARGUMENT', /^drives\[1\].file '\/a' is given twice: an image is one disk$/],
  ['readonly that is not a boolean', { drives: [{ file: '/a', readonly: 'on' }] }, 'TSVMM_BAD_ARGUMENT', /^drives\[0\].readonly 'on' is not true or false$/],
  ['a serial that is not printable ASCII', { drives: [{ file: '/a', serial: 'caf\u00e9' }] }, 'TSVMM_BAD_ARGUMENT', /^drives\[0\].serial 'café' is not a string of printable ASCII$/],
  ['a serial longer than GET_ID returns', { drives: [{ file: '/a', serial: 'x'.repeat(21) }] }, 'TSVMM_LIMIT', /^drives\[0\].serial 'x{21}' is too long: at most 20 bytes$/],
  ['an unknown console', { console: 'hvc0' }, 'TSVMM_BAD_ARGUMENT', /^console 'hvc0' is not one of serial, virtio$/],
  ['rng that is not a boolean', { rng: 'on' }, 'TSVMM_BAD_ARGUMENT', /^rng 'on' is not true or false$/],
  ['agent that is not a boolean', { agent: 1 }, 'TSVMM_BAD_ARGUMENT', /^agent 1 is not true or false$/],
  ['network cards that are not a list', { nics: { kind: 'user' } }, 'TSVMM_BAD_ARGUMENT', /^nics \(an object\) is not an array$/],
  ['more network cards than the board has slots', { nics: Array.from({ length: MAX_BOARD_NICS + 1 }, () => ({ kind: 'user' })) }, 'TSVMM_LIMIT', /^nics has 9 network cards: at most 8$/],
  ['a network card of an unknown kind', { nics: [{ kind: 'slirp' }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].kind 'slirp' is not one of user, tap$/],
  ['a multicast MAC', { nics: [{ kind: 'user', mac: '01:00:5e:00:00:01' }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].mac '01:00:5e:00:00:01' is not a unicast MAC address/],
  ['a MAC that is not a string', { nics: [{ kind: 'user', mac: 5 }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].mac 5 is not a unicast MAC address/],
  ['a TAP without its interface', { nics: [{ kind: 'tap' }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].ifname is not an interface name$/],
  ['a TAP interface name too long for Linux', { nics: [{ kind: 'tap', ifname: 'x'.repeat(16) }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].ifname 'x{16}' is not a valid Linux interface name/],
  ['forwards that are not a list', { nics: [{ kind: 'user', hostForwards: 8080 }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].hostForwards 8080 is not an array$/],
  ['a forward to port 0', { nics: [{ kind: 'user', hostForwards: [{ hostPort: 8080, guestPort: 0 }] }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].hostForwards\[0\].guestPort 0 is too small: at least port 1$/],
  ['a forward from a port above 65535', { nics: [{ kind: 'user', hostForwards: [{ hostPort: 65536, guestPort: 80 }] }] }, 'TSVMM_LIMIT', /^nics\[0\].hostForwards\[0\].hostPort 65536 is too large: at most port 65535$/],
  ['a forward of an unknown protocol', { nics: [{ kind: 'user', hostForwards: [{ protocol: 'sctp', hostPort: 1, guestPort: 1 }] }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].hostForwards\[0\].protocol 'sctp' is not one of tcp, udp$/],
  ['a forward from a host name, not an address', { nics: [{ kind: 'user', hostForwards: [{ hostAddress: 'localhost', hostPort: 1, guestPort: 1 }] }] }, 'TSVMM_BAD_ARGUMENT', /^nics\[0\].hostForwards\[0\].hostAddress 'localhost' is not an IPv4 or IPv6 address/],
  ['two cards with one MAC', { nics: [{ kind: 'user', mac: '02:00:00:00:00:01' }, { kind: 'user', mac: '02:00:00:00:00:01' }] }, 'TSVMM_BAD_ARGUMENT', /^nics are refused: two NICs have the MAC address 02:00:00:00:00:01$/],
  ['one host port forwarded by two cards', { nics: [{ kind: 'user', hostForwards: [{ hostPort: 2222, guestPort: 22 }] }, { kind: 'user', hostForwards: [{ hostPort: 2222, guestPort: 22 }] }] }, 'TSVMM_BAD_ARGUMENT', /^nics are refused: host tcp port 2222 is forwarded by two NICs$/],
  ['two cards on one TAP', { nics: [{ kind: 'tap', ifname: 't0' }, { kind: 'tap', ifname: 't0' }] }, 'TSVMM_BAD_ARGUMENT', /^nics are refused: two NICs use the TAP interface t0$/],
];

test('config: each invalid value is refused with its code, naming the field, the value and the limit', () => {
  for (const [what, given, code, message] of INVALID) {
    const options = { kernel, ...given } as unknown as MachineOptions;
    assert.throws(() => machineConfig(options), (e: unknown) => {
      assert.ok(e instanceof ConfigError, what);
      assert.equal(e.code, code, what);
      assert.match(e.message, message, what);
      assert.equal(e.message.endsWith(e.problem), true, what);
      assert.equal(e.detail?.['option'], e.option);
      return true;
    }, what);
  }
});

test('config: options that are not an object are refused', () => {
  for (const options of [undefined, null, 'kernel']) {
    assert.throws(() => machineConfig(options as unknown as MachineOptions), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_BAD_ARGUMENT');
  }
});

test('config: VirtualMachine.create refuses the same values with the same codes, before it looks at the files', async () => {
  await assert.rejects(VirtualMachine.create({ kernel: '/nonexistent', memory: 1 << 20 }), { code: 'TSVMM_BAD_ARGUMENT', message: /^memory 1048576 is too small/ });
  await assert.rejects(VirtualMachine.create({ kernel: '/nonexistent', cpus: 65 }), { code: 'TSVMM_LIMIT' });
  await assert.rejects(VirtualMachine.create({ kernel: '/nonexistent' }), { code: 'TSVMM_BAD_KERNEL' });
});
