/**
 * The passt backend against the real passt, with no guest kernel: the test is the guest, and
 * speaks Ethernet frames by hand. Everything stays on this machine: passt answers DHCP and ARP
 * itself, and the forwarded port is connected to from 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { TsvmmError } from '../../../src/common/errors.js';
import { PasstBackend, passtForwardArgs } from '../../../src/devices/net/passt.js';
import { macBytes, parseNicOption, type UserNicConfig } from '../../../src/devices/net/nic-config.js';
import { hasTool } from '../../helpers/tools.js';
import { FrameCollector } from './frames.js';
import {
  DHCP_OFFER, ETHERTYPE_ARP, IPPROTO_TCP, TCP_SYN, arpRequest, dhcpDiscover, ipBytes, parseDhcp, parseFrame,
} from './packets.js';

const PASST = hasTool('passt');
const NO_PASST = 'passt is not installed (Debian package passt)';

/** A TCP port free on 127.0.0.1 now (the OS picks it; passt binds it right after). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('passt arguments for forwards', () => {
  const nic = parseNicOption('user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-:53,hostfwd=tcp:[::1]:8080-:80', 0) as UserNicConfig;
  assert.deepEqual(nic.hostForwards.flatMap(passtForwardArgs), ['-t', '2222:22', '-u', '127.0.0.1/5353:53', '-t', '::1/8080:80']);
});

test('a missing passt program: TSVMM_TOOL_MISSING naming the Debian package', async () => {
  await assert.rejects(PasstBackend.start({ program: '/nonexistent/passt' }), (e: unknown) =>
    e instanceof TsvmmError && e.code === 'TSVMM_TOOL_MISSING' && /Debian package passt/.test(e.message));
});

test('passt refusing its arguments: TSVMM_NET_BACKEND with passt\'s own words', { skip: !PASST && NO_PASST }, async () => {
  await assert.rejects(PasstBackend.start({ extraArgs: ['--no-such-option'] }), (e: unknown) =>
    e instanceof TsvmmError && e.code === 'TSVMM_NET_BACKEND' && /passt exited with status \d+ while starting: .*no-such-option/.test(e.message));
});

test('passt end to end: DHCP offer with our MTU, ARP for the router, a forwarded host port reaches the guest', { skip: !PASST && NO_PASST }, async (t) => {
  const mac = macBytes('02:74:73:76:6d:42');
  const port = await freePort();
  const backend = await PasstBackend.start({ mtu: 1500, hostForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: port, guestPort: 8080 }] });
  const pid = backend.pid!;
  const rx = new FrameCollector();
  backend.attach(rx);
  let client: Socket | undefined;
  t.after(async () => {
    client?.destroy();
    await backend.close();
  });
  assert.ok(processAlive(pid));

  // DHCPDISCOVER -> DHCPOFFER addressed to our MAC, with the MTU passt was given.
  const xid = 0x7473766d;
  assert.equal(backend.send(dhcpDiscover(mac, xid)), true);
  const offerFrame = await rx.waitFor((f) => {
    const p = parseFrame(f);
    return p.udp?.srcPort === 67 && p.udp.dstPort === 68 && parseDhcp(p.udp.payload)?.xid === xid;
  }, 'DHCPOFFER');
  const offer = parseDhcp(parseFrame(offerFrame).udp!.payload)!;
  assert.equal(offer.op, 2, 'BOOTREPLY');
  assert.equal(offer.chaddr, '02:74:73:76:6d:42');
  assert.deepEqual([...offer.options.get(53)!], [DHCP_OFFER]);
  assert.notEqual(offer.yiaddr, '0.0.0.0');
  assert.equal(new DataView(offer.options.get(26)!.buffer).getUint16(0), 1500, 'interface MTU option');
  assert.equal(offer.options.get(1)?.length, 4, 'a subnet mask');
  const router = offer.options.get(3);
  assert.equal(router?.length, 4, 'a router');

  // ARP: who has the router? passt answers for it.
  const routerIp = [...router!].join('.');
  backend.send(arpRequest(mac, ipBytes(offer.yiaddr), router!));
  const reply = parseFrame(await rx.waitFor((f) => {
    const p = parseFrame(f);
    return p.type === ETHERTYPE_ARP && p.arp?.op === 2 && p.arp.senderIp === routerIp;
  }, 'ARP reply'));
  assert.equal(reply.arp!.targetMac, '02:74:73:76:6d:42');
  assert.equal(reply.dst, '02:74:73:76:6d:42');

  // A connection to the forwarded host port becomes a SYN to the guest's port 8080.
  client = connect(port, '127.0.0.1');
  client.on('error', () => {}); // the guest never answers; the connection is dropped at the end
  const syn = parseFrame(await rx.waitFor((f) => {
    const p = parseFrame(f);
    return p.ip?.protocol === IPPROTO_TCP && p.tcp?.dstPort === 8080 && (p.tcp.flags & TCP_SYN) !== 0;
  }, 'TCP SYN for the forwarded port'));
  assert.equal(syn.dst, '02:74:73:76:6d:42');
  assert.equal(syn.ip!.dst, offer.yiaddr);

  // Closing ends passt; the receiver hears of an orderly close.
  await backend.close();
  assert.equal(processAlive(pid), false);
  assert.deepEqual(rx.closedWith, [null]);
  assert.equal(backend.send(new Uint8Array(60)), true, 'frames after close are dropped, not an error');
});

test('passt dying under the machine: the receiver is told, with passt\'s exit; the temporary directory goes', { skip: !PASST && NO_PASST }, async () => {
  const backend = await PasstBackend.start();
  const rx = new FrameCollector();
  backend.attach(rx);
  process.kill(backend.pid!, 'SIGKILL');
  const reason = await rx.waitClosed();
  assert.match(reason ?? '', /passt killed by SIGKILL/);
  const dir = (backend as unknown as { dir: string }).dir;
  await backend.close();
  assert.equal(existsSync(dir), false);
});
