/**
 * Hand-built Ethernet frames for the network tests (RFC 826 ARP, RFC 791 IPv4, RFC 768 UDP,
 * RFC 2131/2132 DHCP, RFC 792 ICMP echo) and a small parser for what comes back. Only what the
 * tests need: no options beyond DHCP's, no fragments.
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const DHCP_DISCOVER = 1;
export const DHCP_OFFER = 2;
export const BROADCAST_MAC = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const DHCP_MAGIC = 0x63825363;

export function ipBytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

export function ipString(b: Uint8Array): string {
  return [...b.subarray(0, 4)].join('.');
}

export function macString(b: Uint8Array): string {
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The Internet checksum (RFC 1071) of `b`. */
export function inetChecksum(b: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  new DataView(f.buffer).setUint16(12, type);
  f.set(payload, 14);
  return f;
}

export function ipv4(src: Uint8Array, dst: Uint8Array, protocol: number, payload: Uint8Array, id = 1): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45; // version 4, 5 words of header
  v.setUint16(2, p.length);
  v.setUint16(4, id);
  p[8] = 64; // TTL
  p[9] = protocol;
  p.set(src, 12);
  p.set(dst, 16);
  v.setUint16(10, inetChecksum(p.subarray(0, 20)));
  p.set(payload, 20);
  return p;
}

/** A UDP datagram with its checksum over the IPv4 pseudo-header. */
export function udp(src: Uint8Array, dst: Uint8Array, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const v = new DataView(u.buffer);
  v.setUint16(0, srcPort);
  v.setUint16(2, dstPort);
  v.setUint16(4, u.length);
  u.set(payload, 8);
  const pseudo = new Uint8Array(12);
  pseudo.set(src, 0);
  pseudo.set(dst, 4);
  pseudo[9] = IPPROTO_UDP;
  new DataView(pseudo.buffer).setUint16(10, u.length);
  const sum = inetChecksum(u, (~inetChecksum(pseudo)) & 0xffff);
  v.setUint16(6, sum === 0 ? 0xffff : sum);
  return u;
}

/** A DHCPDISCOVER from `mac` (broadcast reply asked for), as a whole Ethernet frame. */
export function dhcpDiscover(mac: Uint8Array, xid: number): Uint8Array {
  const options = [53, 1, DHCP_DISCOVER, 55, 4, 1, 3, 6, 26, 255];
  const b = new Uint8Array(240 + options.length);
  const v = new DataView(b.buffer);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1; // Ethernet
  b[2] = 6; // hardware address length
  v.setUint32(4, xid);
  v.setUint16(10, 0x8000); // broadcast flag
  b.set(mac, 28); // chaddr
  v.setUint32(236, DHCP_MAGIC);
  b.set(options, 240);
  const zero = new Uint8Array(4);
  const all = Uint8Array.from([255, 255, 255, 255]);
  return ethernet(BROADCAST_MAC, mac, ETHERTYPE_IPV4, ipv4(zero, all, IPPROTO_UDP, udp(zero, all, 68, 67, b)));
}

/** An ARP request: who has `targetIp`? tell `senderIp` at `mac`. */
export function arpRequest(mac: Uint8Array, senderIp: Uint8Array, targetIp: Uint8Array): Uint8Array {
  const a = new Uint8Array(28);
  const v = new DataView(a.buffer);
  v.setUint16(0, 1); // Ethernet
  v.setUint16(2, ETHERTYPE_IPV4);
  a[4] = 6;
  a[5] = 4;
  v.setUint16(6, 1); // request
  a.set(mac, 8);
  a.set(senderIp, 14);
  a.set(targetIp, 24);
  return ethernet(BROADCAST_MAC, mac, ETHERTYPE_ARP, a);
}

/** An ICMP echo request from `src` to `dst`. */
export function icmpEcho(dstMac: Uint8Array, srcMac: Uint8Array, src: Uint8Array, dst: Uint8Array, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  const v = new DataView(m.buffer);
  m[0] = 8; // echo request
  v.setUint16(4, id);
  v.setUint16(6, seq);
  m.set(data, 8);
  v.setUint16(2, inetChecksum(m));
  return ethernet(dstMac, srcMac, ETHERTYPE_IPV4, ipv4(src, dst, IPPROTO_ICMP, m));
}

export interface ParsedFrame {
  dst: string;
  src: string;
  type: number;
  arp?: { op: number; senderMac: string; senderIp: string; targetMac: string; targetIp: string };
  ip?: { src: string; dst: string; protocol: number; payload: Uint8Array };
  udp?: { srcPort: number; dstPort: number; payload: Uint8Array };
  tcp?: { srcPort: number; dstPort: number; flags: number };
  icmp?: { type: number; id: number; seq: number; data: Uint8Array };
}

export const TCP_SYN = 0x02;

export function parseFrame(f: Uint8Array): ParsedFrame {
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const out: ParsedFrame = { dst: macString(f.subarray(0, 6)), src: macString(f.subarray(6, 12)), type: v.getUint16(12) };
  if (out.type === ETHERTYPE_ARP && f.length >= 42) {
    out.arp = {
      op: v.getUint16(20), senderMac: macString(f.subarray(22)), senderIp: ipString(f.subarray(28)),
      targetMac: macString(f.subarray(32)), targetIp: ipString(f.subarray(38)),
    };
  } else if (out.type === ETHERTYPE_IPV4 && f.length >= 34) {
    const ihl = (f[14]! & 0xf) * 4;
    const total = v.getUint16(16);
    const payload = f.subarray(14 + ihl, 14 + total);
    out.ip = { src: ipString(f.subarray(26)), dst: ipString(f.subarray(30)), protocol: f[23]!, payload };
    const p = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    if (out.ip.protocol === IPPROTO_UDP && payload.length >= 8) out.udp = { srcPort: p.getUint16(0), dstPort: p.getUint16(2), payload: payload.subarray(8) };
    if (out.ip.protocol === IPPROTO_TCP && payload.length >= 20) out.tcp = { srcPort: p.getUint16(0), dstPort: p.getUint16(2), flags: payload[13]! };
    if (out.ip.protocol === IPPROTO_ICMP && payload.length >= 8) out.icmp = { type: payload[0]!, id: p.getUint16(4), seq: p.getUint16(6), data: payload.subarray(8) };
  }
  return out;
}

export interface DhcpReply {
  op: number;
  xid: number;
  yiaddr: string;
  chaddr: string;
  /** Options by code (the raw bytes). */
  options: Map<number, Uint8Array>;
}

/** A BOOTP/DHCP message (a UDP payload), or null when it is not one. */
export function parseDhcp(b: Uint8Array): DhcpReply | null {
  if (b.length < 240) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(236) !== DHCP_MAGIC) return null;
  const options = new Map<number, Uint8Array>();
  for (let i = 240; i < b.length;) {
    const code = b[i]!;
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    const len = b[i + 1] ?? 0;
    options.set(code, b.slice(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return { op: b[0]!, xid: v.getUint32(4), yiaddr: ipString(b.subarray(16)), chaddr: macString(b.subarray(28)), options };
}
