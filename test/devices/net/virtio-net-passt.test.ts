/**
 * The whole path without a guest kernel: a driver writes a DHCPDISCOVER into guest memory and
 * queues it on virtio-net's transmit queue; the device hands it to passt, and passt's DHCPOFFER
 * comes back into a receive buffer the driver posted, with the used-buffer interrupt. Then
 * passt is closed and the driver sees the link go down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../../src/devices/irq.js';
import { VirtioMmio, INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER } from '../../../src/devices/virtio/virtio-mmio.js';
import { VirtioNet, NET_RX_QUEUE, NET_TX_QUEUE, VIRTIO_NET_HDR_SIZE, VIRTIO_NET_S_LINK_UP } from '../../../src/devices/virtio/virtio-net.js';
import { macBytes, parseNicOption } from '../../../src/devices/net/nic-config.js';
import { openNetBackend } from '../../../src/devices/net/open.js';
import { hasTool } from '../../helpers/tools.js';
import { TestDriver, TestRam, type DriverQueue } from '../virtio/driver.js';
import { DHCP_OFFER, dhcpDiscover, parseDhcp, parseFrame } from './packets.js';

/** Waits (event loop turns) until `cond` holds; `timeoutMs` bounds a failing test. */
async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 5) {
    if (waited >= timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('virtio-net over passt: a DHCPDISCOVER from guest memory gets a DHCPOFFER into a receive buffer; closing passt takes the link down', { skip: !hasTool('passt') && 'passt is not installed (Debian package passt)' }, async (t) => {
  const nic = parseNicOption('user', 0);
  const backend = await openNetBackend(nic, { mtu: 1500 });
  t.after(() => backend.close());
  const ram = new TestRam(1 << 20);
  const irq = new RecordingIrqLine();
  const device = new VirtioNet({ mac: macBytes(nic.mac), backend, mtu: 1500 });
  const transport = new VirtioMmio({ device, memory: ram.mem, irq });
  const driver = new TestDriver(transport, ram);
  const [rx, tx] = driver.probe(2) as [DriverQueue, DriverQueue];
  assert.equal(driver.config(6, 2), VIRTIO_NET_S_LINK_UP);

  const rxBuffers = Array.from({ length: 8 }, () => ram.alloc(1526));
  for (const b of rxBuffers) rx.publish(rx.addChain([{ addr: b, len: 1526, write: true }]));
  driver.kick(NET_RX_QUEUE);

  const xid = 0x0badcafe;
  const discover = dhcpDiscover(macBytes(nic.mac), xid);
  const packet = new Uint8Array(VIRTIO_NET_HDR_SIZE + discover.length);
  packet.set(discover, VIRTIO_NET_HDR_SIZE);
  tx.publish(tx.addChain([{ addr: ram.put(packet), len: packet.length }]));
  driver.kick(NET_TX_QUEUE);
  assert.equal(tx.takeUsed().length, 1);
  assert.equal(device.counters.txFrames, 1);

  // Frames arrive as passt sends them (NDP and others may come first); find the offer.
  let offer: ReturnType<typeof parseDhcp> = null;
  await until(() => {
    for (const { id, len } of rx.takeUsed()) {
      const buffer = ram.get(ram.u32(rx.desc + 16 * id), len);
      assert.equal(new DataView(buffer.buffer).getUint16(10, true), 1, 'num_buffers');
      const p = parseFrame(buffer.subarray(VIRTIO_NET_HDR_SIZE));
      const dhcp = p.udp?.dstPort === 68 ? parseDhcp(p.udp.payload) : null;
      if (dhcp?.xid === xid) offer = dhcp;
      rx.publish(rx.addChain([{ addr: ram.u32(rx.desc + 16 * id), len: 1526, write: true }])); // give it back
    }
    driver.kick(NET_RX_QUEUE);
    return offer !== null;
  }, 'DHCPOFFER in a receive buffer');
  assert.deepEqual([...offer!.options.get(53)!], [DHCP_OFFER]);
  assert.equal(offer!.chaddr, nic.mac);
  assert.equal(driver.ackInterrupt() & INTERRUPT_USED_BUFFER, INTERRUPT_USED_BUFFER);

  await backend.close();
  assert.equal(device.linkUp, false);
  assert.equal(driver.config(6, 2), 0);
  assert.equal(driver.ackInterrupt() & INTERRUPT_CONFIG_CHANGE, INTERRUPT_CONFIG_CHANGE);
});
