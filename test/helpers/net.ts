/**
 * Linux with a virtio network card on passt (`nics: [{ kind: 'user' }]`), the check that the soft
 * test (test/linux/net-soft.test.ts) and the kvm one (test/kvm-nested/net-kvm.test.ts) share:
 * Debian's virtio_net module in an initramfs from `tsvmm initramfs --net-dhcp`, and all traffic
 * local to this host. The guest gets its address by DHCP, fetches a file with wget from an HTTP
 * server on this host's loopback, through the gateway's address (passt maps connections to the
 * gateway to the host), and its hash is the file's; a host port forwarded to the guest
 * (hostForwards) reaches a guest `nc -l` both ways. The guest's commands run through the exec agent.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type { Accel } from '../../src/backends/open.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { agentInitramfs, linuxGuest } from './linux.js';
import { hasTool, withTempDirAsync } from './tools.js';

/** The guest's modules: its MMIO transport, the agent's console, the network card. */
export const NET_MODULES = ['virtio_mmio', 'virtio_console', 'virtio_net'];
/** The guest port the host's forward reaches (hex as /proc/net/tcp and tcp6 show it: 1F90; busybox nc listens on IPv6's any address). */
const GUEST_PORT = 8080;
export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Serves `file` as /file.bin on `host`, port chosen by the system. */
export async function httpServer(file: Uint8Array, host: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/file.bin') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': file.length }).end(file);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return server;
}

/** Connects to host:port, sends `text`, half-closes, and resolves with all the peer sent before closing. */
function talk(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const socket = connect(port, host, () => socket.end(text));
    socket.on('data', (b: Buffer) => (got += b.toString('latin1')));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
}

/** Boots Linux on `accel` with a card on passt and checks DHCP, a fetch through the gateway and a forwarded port (see above); skips `t` saying why where it cannot. */
export async function checkUserNetwork(t: TestContext, accel: Accel, bootTimeoutMs: number): Promise<void> {
  const guest = linuxGuest();
  if (typeof guest === 'string' || !guest.vmlinux) return t.skip(typeof guest === 'string' ? guest : 'no vmlinux in the cache (scripts/fetch-guest-kernel.sh)');
  if (!hasTool('passt')) return t.skip('passt is not installed (Debian package passt)');
  await withTempDirAsync(async (dir) => {
    const file = randomBytes(512 * 1024);
    const server = await httpServer(file, '127.0.0.1');
    t.after(() => server.close());
    const httpPort = (server.address() as AddressInfo).port;
    // A free host port for the forward: one the system just gave and took back.
    const probe = await httpServer(file, '127.0.0.1');
    const hostPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));

    const vm = await VirtualMachine.create({
      kernel: guest.vmlinux!, initrd: await agentInitramfs(dir, NET_MODULES, ['--net-dhcp']), cmdline: 'console=ttyS0', memory: 256 << 20, accel,
      timeoutMs: bootTimeoutMs, agent: true, nics: [{ kind: 'user', hostForwards: [{ hostAddress: '127.0.0.1', hostPort, guestPort: GUEST_PORT }] }],
    });
    let out = '';
    let lease: string | undefined;
    vm.console.on('data', (b: Buffer) => {
      out = (out + b.toString('latin1')).slice(-8000);
      lease ??= /tsvmm-init: eth0 has [0-9.]+\/\d+ by DHCP, router [0-9.]+/.exec(out)?.[0];
    });
    vm.start();
    try {
      const sh = async (command: string) => {
        const r = await vm.exec(command, { timeoutMs: bootTimeoutMs });
        const text = r.stdout.toString('latin1');
        assert.equal(r.code, 0, `${command}\n${text}${r.stderr.toString('latin1')}\nconsole tail:\n${out}`);
        return text;
      };
      // /init's udhcpc got an address and a default route before the agent started.
      assert.match(await sh('ip -4 -o addr show dev eth0'), /inet [0-9.]+\/\d+ /);
      assert.ok(lease, `/init said what DHCP gave; console tail:\n${out}`);
      const gateway = /^default via ([0-9.]+) dev eth0/m.exec(await sh('ip route'))?.[1];
      assert.ok(gateway, 'a default route through eth0');
      assert.equal((await sh(`cat /sys/class/net/eth0/address`)).trim(), '02:74:73:76:6d:00');
      // The host's loopback server, reached at the gateway's address.
      assert.equal(await sh(`wget -q -O - http://${gateway}:${httpPort}/file.bin | sha256sum`), `${sha256(file)}  -\n`);
      // The forward: the guest listens; the host connects to its own port and both sides talk.
      await sh(`(echo from-guest | nc -l -p ${GUEST_PORT} > /tmp/from-host) </dev/null >/dev/null 2>&1 &
        n=0; until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -qE ':${GUEST_PORT.toString(16).toUpperCase()} 0+:0000 0A'; do n=$((n+1)); [ $n -gt 600 ] && exit 1; sleep 0.1; done`);
      assert.equal(await talk('127.0.0.1', hostPort, 'from-host\n'), 'from-guest\n');
      assert.equal(await sh('n=0; while [ ! -s /tmp/from-host ] && [ $n -lt 600 ]; do n=$((n+1)); sleep 0.1; done; cat /tmp/from-host'), 'from-host\n');
    } finally {
      await vm.stop();
    }
    const exited = await vm.exited;
    const [nic] = exited.nics;
    assert.ok(nic && nic.device, 'the card\'s counters');
    assert.match(nic.backend, /^passt \(pid \d+\)$/);
    assert.ok(nic.device.txFrames > 0 && nic.device.rxFrames > 0);
    assert.equal(nic.device.txErrors + nic.device.rxErrors, 0);
    assert.equal(nic.host.toHost, nic.device.txFrames, 'every frame the guest sent reached passt');
  });
}
