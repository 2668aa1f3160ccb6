/**
 * The TAP backend. Refusals are tested everywhere; frames move through a real TAP only where the
 * test may make one (root, /dev/net/tun, iproute2's ip): the TAP goes into a network namespace
 * the test makes, with an address there, so every frame stays between this process and that
 * namespace.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { TsvmmError } from '../../../src/common/errors.js';
import { TapBackend, TUN_DEVICE } from '../../../src/devices/net/tap.js';
import { macBytes } from '../../../src/devices/net/nic-config.js';
import { hasTool } from '../../helpers/tools.js';
import { FrameCollector } from './frames.js';
import { ETHERTYPE_ARP, arpRequest, icmpEcho, ipBytes, parseFrame } from './packets.js';

const MAC = macBytes('02:74:73:76:6d:07');
const NS_IP = '198.51.100.1'; // the namespace's end (TEST-NET-2, inside the test's own namespace)
const GUEST_IP = '198.51.100.2';

function ip(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

/** Why a real TAP cannot be made here, or null when it can. */
function noTapReason(): string | null {
  if (process.getuid?.() !== 0) return 'making a TAP and a network namespace needs root (CAP_NET_ADMIN)';
  if (!existsSync(TUN_DEVICE)) return `${TUN_DEVICE} does not exist`;
  if (!hasTool('ip')) return 'iproute2 (ip) is not installed';
  return null;
}

/** A TAP name and namespace of this test, removed afterwards. */
function scratchNames(t: TestContext, tag: string): { ifname: string; ns: string } {
  const ifname = `tsvmm${tag}${process.pid % 100000}`.slice(0, 15);
  const ns = `tsvmm-test-${tag}-${process.pid}`;
  t.after(() => {
    ip('netns', 'del', ns);
    ip('link', 'del', ifname);
  });
  return { ifname, ns };
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof TsvmmError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'no error';
}

test('TAP refusals: no clone device, an invalid interface name', () => {
  assert.match(errorCode(() => TapBackend.open({ ifname: 'tsvmmx0', device: '/nonexistent/tun' })), /^TSVMM_NET_BACKEND: \/nonexistent\/tun does not exist/);
  assert.match(errorCode(() => TapBackend.open({ ifname: 'a/b' })), /^TSVMM_USAGE: interface name 'a\/b'/);
});

test('TAP without the permission: TSVMM_NET_PERMISSION saying what would allow it', (t) => {
  const ifname = `tsvmmperm${process.pid % 10000}`;
  if (process.getuid?.() !== 0) {
    // Not root: this process has no CAP_NET_ADMIN (or no access to /dev/net/tun) itself.
    assert.match(errorCode(() => TapBackend.open({ ifname })), /^TSVMM_NET_PERMISSION: /);
    return;
  }
  // Root: ask as the user `nobody`, in a child process.
  const script = `import(${JSON.stringify(new URL('../../../src/devices/net/tap.js', import.meta.url).href)}).then((m) => {
    try { m.TapBackend.open({ ifname: ${JSON.stringify(ifname)} }); console.log('opened'); } catch (e) { console.log(e.code + ': ' + e.message); }
  });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', uid: 65534, gid: 65534 });
  if (r.status !== 0) {
    t.skip(`a child process as nobody cannot run this test's code here: ${r.stderr.split('\n')[0]}`);
    return;
  }
  assert.match(r.stdout, /^TSVMM_NET_PERMISSION: /);
  assert.match(r.stdout, /CAP_NET_ADMIN|not accessible/);
});

test('TAP: frames both ways with a network namespace the test makes (ARP, ICMP echo); a TAP made here goes on close', async (t) => {
  const why = noTapReason();
  if (why) {
    t.skip(why);
    return;
  }
  const { ifname, ns } = scratchNames(t, 'n');
  const tap = TapBackend.open({ ifname });
  const rx = new FrameCollector();
  tap.attach(rx);
  t.after(() => tap.close());
  assert.equal(tap.description, `tap ${ifname}`);
  for (const step of [['netns', 'add', ns], ['link', 'set', ifname, 'netns', ns], ['-n', ns, 'addr', 'add', `${NS_IP}/24`, 'dev', ifname], ['-n', ns, 'link', 'set', ifname, 'up']]) {
    const r = ip(...step);
    if (!r.ok) {
      t.skip(`ip ${step.join(' ')} failed here: ${r.out}`);
      return;
    }
  }
  tap.send(arpRequest(MAC, ipBytes(GUEST_IP), ipBytes(NS_IP)));
  const arp = parseFrame(await rx.waitFor((f) => {
    const p = parseFrame(f);
    return p.type === ETHERTYPE_ARP && p.arp?.op === 2 && p.arp.senderIp === NS_IP;
  }, 'ARP reply from the namespace'));
  assert.equal(arp.dst, '02:74:73:76:6d:07');
  assert.equal(arp.arp!.targetIp, GUEST_IP);
  const nsMac = macBytes(arp.arp!.senderMac);
  const data = new TextEncoder().encode('tsvmm tap echo');
  tap.send(icmpEcho(nsMac, MAC, ipBytes(GUEST_IP), ipBytes(NS_IP), 0x1234, 1, data));
  const echo = parseFrame(await rx.waitFor((f) => parseFrame(f).icmp?.type === 0, 'ICMP echo reply'));
  assert.equal(echo.ip!.src, NS_IP);
  assert.deepEqual([echo.icmp!.id, echo.icmp!.seq], [0x1234, 1]);
  assert.deepEqual(echo.icmp!.data, data);
  assert.equal(tap.counters.writeErrors, 0);
  await tap.close();
  assert.deepEqual(rx.closedWith, [null]);
  assert.equal(ip('-n', ns, 'link', 'show', ifname).ok, false, 'the TAP this process made is gone');
});

test('TAP: attaches to a persistent TAP made with ip tuntap, which stays after close; a busy one is refused', async (t) => {
  const why = noTapReason();
  if (why) {
    t.skip(why);
    return;
  }
  const { ifname } = scratchNames(t, 'p');
  const made = ip('tuntap', 'add', 'dev', ifname, 'mode', 'tap');
  if (!made.ok) {
    t.skip(`ip tuntap add failed here: ${made.out}`);
    return;
  }
  const tap = TapBackend.open({ ifname });
  assert.match(errorCode(() => TapBackend.open({ ifname })), /^TSVMM_NET_BACKEND: TAP .* is in use by another process/);
  await tap.close();
  assert.equal(ip('link', 'show', ifname).ok, true, 'a persistent TAP stays');
  const again = TapBackend.open({ ifname }); // free again once closed
  await again.close();
  const tun = `${ifname.slice(0, 12)}tun`;
  t.after(() => ip('link', 'del', tun));
  if (ip('tuntap', 'add', 'dev', tun, 'mode', 'tun').ok) {
    assert.match(errorCode(() => TapBackend.open({ ifname: tun })), /^TSVMM_NET_BACKEND: TAP .* is not a TAP device/);
  }
});
