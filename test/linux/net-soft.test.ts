// Debian's Linux on the soft backend with a virtio network card (Debian's virtio_net module, an
// initramfs from `tsvmm initramfs`), all traffic local to this host:
// - `nics: [{ kind: 'user' }]` (passt): the guest gets its address by DHCP (--net-dhcp), fetches a
//   file with wget from an HTTP server this test runs on the host's loopback, through the
//   gateway's address (passt maps connections to the gateway to the host), and its hash is the
//   file's; a host port forwarded to the guest (hostForwards) reaches a guest `nc -l` both ways
//   (test/helpers/net.ts, shared with the kvm backend's test/kvm-nested/net-kvm.test.ts).
// - `--nic tap` through the CLI, in a network namespace of its own: the test makes the TAP and its
//   address there and serves the file from it; the guest sets its address, fetches the file and
//   answers the host's ping. Skipped, saying why, when namespaces cannot be made (not root, or
//   forbidden).
// One boot each; the guest's commands run through the exec agent.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { agentInitramfs, linuxGuest } from '../helpers/linux.js';
import { NET_MODULES, checkUserNetwork, httpServer, sha256 } from '../helpers/net.js';
import { hasTool, TSVMM_BIN, withTempDirAsync } from '../helpers/tools.js';

const BOOT_TIMEOUT_MS = 10 * 60_000;

test('Linux with a virtio NIC on passt (soft): an address by DHCP, a file from the host\'s loopback through the gateway, a host port forwarded to the guest', { timeout: BOOT_TIMEOUT_MS + 60_000 }, (t) =>
  checkUserNetwork(t, 'soft', BOOT_TIMEOUT_MS));

test('Linux with a virtio NIC on passt (soft), saved and restored: the restored machine has a new passt, and its guest fetches a file from the host\'s loopback', { timeout: 2 * BOOT_TIMEOUT_MS }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  if (!hasTool('passt')) return t.skip('passt is not installed (Debian package passt)');
  await withTempDirAsync(async (dir) => {
    const file = randomBytes(256 * 1024);
    const server = await httpServer(file, '127.0.0.1');
    t.after(() => server.close());
    const httpPort = (server.address() as AddressInfo).port;
    const snap = join(dir, 'net.snap');
    const vm = await VirtualMachine.create({
      kernel: guest.vmlinux!, initrd: await agentInitramfs(dir, NET_MODULES, ['--net-dhcp']), cmdline: 'console=ttyS0', memory: 256 << 20, accel: 'soft',
      timeoutMs: BOOT_TIMEOUT_MS, agent: true, nics: [{ kind: 'user' }],
    });
    let out = '';
    vm.console.on('data', (b: Buffer) => void (out = (out + b.toString('latin1')).slice(-8000)));
    vm.start();
    let gateway: string | undefined;
    try {
      const r = await vm.exec('ip route', { timeoutMs: BOOT_TIMEOUT_MS });
      gateway = /^default via ([0-9.]+) dev eth0/m.exec(r.stdout.toString('latin1'))?.[1];
      assert.ok(gateway, `a default route through eth0; console tail:\n${out}`);
      await vm.save(snap);
    } finally {
      await vm.stop();
    }
    const first = (await vm.exited).nics[0]!;
    const restored = await VirtualMachine.restore(snap, { timeoutMs: BOOT_TIMEOUT_MS });
    let after = '';
    restored.console.on('data', (b: Buffer) => void (after = (after + b.toString('latin1')).slice(-8000)));
    restored.start();
    try {
      const r = await restored.exec(`wget -q -O - http://${gateway}:${httpPort}/file.bin | sha256sum`, { timeoutMs: BOOT_TIMEOUT_MS });
      assert.equal(r.code, 0, `${r.stderr.toString('latin1')}\nconsole tail:\n${after}`);
      assert.equal(r.stdout.toString('latin1'), `${sha256(file)}  -\n`);
    } finally {
      await restored.stop();
    }
    const [nic] = (await restored.exited).nics;
    assert.ok(nic && nic.device, 'the card\'s counters');
    assert.notEqual(nic.backend, first.backend, 'a new passt');
    assert.ok(nic.device.rxFrames > first.device!.rxFrames, 'the counters continue from the saved ones');
    assert.doesNotMatch(after, /Linux version/, 'the restored machine did not boot again');
  });
});

/** Runs a command; its status and output. */
function sh(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'latin1' });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

test('Linux with a virtio NIC on a TAP in a network namespace (soft, CLI --nic tap): a file from the host\'s side of the TAP, and the host pings the guest', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async (t) => {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  if (process.getuid?.() !== 0) return t.skip('not root: a network namespace and a TAP need CAP_SYS_ADMIN and CAP_NET_ADMIN');
  if (!hasTool('ip')) return t.skip('ip is not installed (Debian package iproute2)');
  const ns = `tsvmm-test-${process.pid}`;
  const made = sh('ip', ['netns', 'add', ns]);
  if (made.status !== 0) return t.skip(`network namespaces are not allowed here: ip netns add: ${made.out.trim()}`);
  const children: ChildProcess[] = [];
  try {
    const inNs = (...args: string[]) => {
      const r = sh('ip', ['netns', 'exec', ns, ...args]);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.out}`);
      return r.out;
    };
    inNs('ip', 'link', 'set', 'lo', 'up');
    inNs('ip', 'tuntap', 'add', 'dev', 'tsvmm-tap0', 'mode', 'tap');
    inNs('ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'tsvmm-tap0');
    inNs('ip', 'link', 'set', 'tsvmm-tap0', 'up');
    await withTempDirAsync(async (dir) => {
      const file = randomBytes(256 * 1024);
      writeFileSync(join(dir, 'file.bin'), file);
      // The HTTP server in the namespace: node itself, so nothing else is needed.
      const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e',
        `require('http').createServer((q, r) => r.end(require('fs').readFileSync(${JSON.stringify(join(dir, 'file.bin'))}))).listen(8000, '10.77.0.1', () => console.log('listening'))`]);
      children.push(server);
      await new Promise<void>((resolve, reject) => {
        server.stdout.on('data', () => resolve());
        server.on('exit', (code) => reject(new Error(`the HTTP server exited (${code})`)));
      });
      const initrd = await agentInitramfs(dir, NET_MODULES);
      // The guest: its address, the file, then it says it is ready and waits (at most a minute) for
      // the host's ping to have been answered before the command ends the machine.
      const command = 'cat /sys/class/net/eth0/address && ip link set eth0 up && ip addr add 10.77.0.2/24 dev eth0 && wget -q -O - http://10.77.0.1:8000/file.bin | sha256sum && ' +
        'echo "tsvmm-net: ready for ping" > /dev/ttyS0 && n=0 && ' +
        'until [ "$(awk \'/^Icmp:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "OutEchoReps") c = i } else print $c }\' /proc/net/snmp)" -gt 0 ]; do n=$((n+1)); [ $n -gt 600 ] && exit 1; sleep 0.1; done';
      const vm = spawn('ip', ['netns', 'exec', ns, process.execPath, TSVMM_BIN, 'run', '--accel', 'soft', '--kernel', guest.vmlinux!, '--initrd', initrd,
        '--append', 'console=ttyS0', '-m', '256', '--nic', 'tap,ifname=tsvmm-tap0,mac=52:54:00:00:00:02', '--timeout', String(BOOT_TIMEOUT_MS / 1000), '--exec', command]);
      children.push(vm);
      let stdout = '';
      let stderr = '';
      let ping: Promise<{ status: number | null; out: string }> | undefined;
      vm.stdout.on('data', (b: Buffer) => (stdout += b.toString('latin1')));
      vm.stderr.on('data', (b: Buffer) => {
        stderr = (stderr + b.toString('latin1')).slice(-8000);
        if (ping === undefined && /tsvmm-net: ready for ping/.test(stderr)) {
          ping = new Promise((resolve) => {
            const p = spawn('ip', ['netns', 'exec', ns, 'busybox', 'ping', '-c', '1', '-W', '60', '10.77.0.2']);
            children.push(p);
            let out = '';
            p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
            p.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
            p.on('close', (status) => resolve({ status, out }));
          });
        }
      });
      const status = await new Promise<number | null>((resolve) => vm.on('close', (code) => resolve(code)));
      assert.equal(stdout, `52:54:00:00:00:02\n${sha256(file)}  -\n`, `stderr tail:\n${stderr}`);
      assert.equal(status, 0, `stderr tail:\n${stderr}`);
      assert.ok(ping, 'the guest said it was ready');
      const pinged = await ping;
      assert.equal(pinged.status, 0, pinged.out);
      assert.match(pinged.out, /1 packets received/);
    });
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill();
    sh('ip', ['netns', 'del', ns]);
  }
});
