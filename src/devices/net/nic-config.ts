/**
 * The `--nic` option: what network card a machine has and what host network is under it, parsed
 * and checked into a NicConfig the machine configuration holds (plain data: it crosses to the
 * board's thread by structured clone) and openNetBackend() (open.ts) turns into a backend.
 *
 *   --nic user[,mac=MAC][,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-:GUESTPORT]...
 *       user-mode networking through passt: the guest gets an address by DHCP and reaches what
 *       the host reaches, as an unprivileged process; each hostfwd forwards a host port (bound
 *       by passt on HOSTADDR, or on every address) to the guest's port. The guest address is
 *       left empty: passt forwards to the address it gave the guest.
 *   --nic tap,ifname=NAME[,mac=MAC]
 *       a TAP device of the host (created if the process may, else an existing one it owns).
 *
 * MAC addresses are written as six hexadecimal pairs separated by colons and must be unicast and
 * not all zero. Without mac=, NIC number n (from 0) gets 02:74:73:76:6d:nn: the same at every
 * boot (DHCP leases and host rules survive), locally administered (bit 1 of the first byte, so it
 * can clash with no vendor's card), "tsvm" in its middle bytes. Machines sharing one network
 * (several on a bridge) need mac= to differ.
 *
 * Every refusal is TSVMM_USAGE with a message naming the bad part.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { TsvmmError } from '../../common/errors.js';

export interface HostForward {
  protocol: 'tcp' | 'udp';
  /** The host address passt binds (IPv4, or IPv6 without brackets); null: every address. */
  hostAddress: string | null;
  hostPort: number;
  guestPort: number;
}

export interface UserNicConfig {
  kind: 'user';
  /** Canonical form: lower-case, colon-separated. */
  mac: string;
  hostForwards: HostForward[];
}

export interface TapNicConfig {
  kind: 'tap';
  mac: string;
  ifname: string;
}

export type NicConfig = UserNicConfig | TapNicConfig;

/** NICs a machine may have (their default MACs differ in the last byte). */
export const MAX_NICS = 256;
const DEFAULT_MAC_PREFIX = [0x02, 0x74, 0x73, 0x76, 0x6d]; // locally administered, unicast, then "tsvm"
/** Linux's IFNAMSIZ less the terminating NUL. */
const MAX_IFNAME = 15;

function usage(message: string): TsvmmError {
  return new TsvmmError('TSVMM_USAGE', message);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** The default address of NIC number `index`. */
export function defaultMac(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_NICS) throw usage(`NIC number ${index} is not from 0 to ${MAX_NICS - 1}`);
  return [...DEFAULT_MAC_PREFIX, index].map(hex2).join(':');
}

/** Checks a MAC address and returns it in canonical form. */
export function parseMac(text: string): string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw usage(`MAC address '${text}' is not six hexadecimal pairs separated by colons`);
  const bytes = text.split(':').map((p) => parseInt(p, 16));
  if (bytes[0]! & 1) throw usage(`MAC address '${text}' is a multicast address; a card needs a unicast one (first byte even)`);
  if (bytes.every((b) => b === 0)) throw usage(`MAC address '${text}' is all zeros`);
  return bytes.map(hex2).join(':');
}

/** The six bytes of a canonical (or any valid) MAC address. */
export function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(parseMac(mac).split(':').map((p) => parseInt(p, 16)));
}

/** Linux's rule for interface names (dev_valid_name), with its length limit. */
export function checkIfname(name: string): string {
  if (name === '' || name === '.' || name === '..' || /[/:\s]/.test(name) || Buffer.byteLength(name) > MAX_IFNAME) {
    throw usage(`interface name '${name}' is not a valid Linux interface name (1 to ${MAX_IFNAME} bytes, no '/', ':' or spaces, not '.' or '..')`);
  }
  return name;
}

function parsePort(text: string, what: string, spec: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) throw usage(`${what} '${text}' in hostfwd=${spec} is not a port from 1 to 65535`);
  return Number(text);
}

/** One hostfwd value: [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, GUESTADDR empty. */
export function parseHostForward(spec: string): HostForward {
  const m = /^(tcp|udp|):(\[[^\]]*\]|[^:[\]]*):([^-:]*)-([^:]*):([^:]*)$/.exec(spec);
  if (!m) throw usage(`hostfwd=${spec} is not [tcp|udp]:[HOSTADDR]:HOSTPORT-:GUESTPORT`);
  const [, proto, addr, hostPort, guestAddr, guestPort] = m as unknown as [string, string, string, string, string, string];
  if (guestAddr !== '') throw usage(`hostfwd=${spec}: leave the guest address empty (passt forwards to the address it gives the guest)`);
  let hostAddress: string | null = null;
  if (addr !== '') {
    const bare = addr.startsWith('[') ? addr.slice(1, -1) : addr;
    if (addr.startsWith('[') ? !isIPv6(bare) : !isIPv4(bare)) throw usage(`host address '${addr}' in hostfwd=${spec} is not an IPv4 address or a bracketed IPv6 address`);
    hostAddress = bare;
  }
  return {
    protocol: proto === 'udp' ? 'udp' : 'tcp',
    hostAddress,
    hostPort: parsePort(hostPort, 'host port', spec),
    guestPort: parsePort(guestPort, 'guest port', spec),
  };
}

const KEYS = { user: ['mac', 'hostfwd'], tap: ['mac', 'ifname'] } as const;

/** Parses one --nic value for NIC number `index` (which picks the default MAC). */
export function parseNicOption(text: string, index: number): NicConfig {
  const [kind, ...parts] = text.split(',');
  if (kind !== 'user' && kind !== 'tap') throw usage(`--nic ${text}: the kind is 'user' (passt) or 'tap', not '${kind}'`);
  const values = new Map<string, string[]>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (!(KEYS[kind] as readonly string[]).includes(key)) throw usage(`--nic ${kind}: unknown option '${key}' (it takes ${KEYS[kind].join(', ')})`);
    if (eq < 0 || eq === part.length - 1) throw usage(`--nic ${kind}: ${key}= needs a value`);
    if (key !== 'hostfwd' && values.has(key)) throw usage(`--nic ${kind}: ${key}= is given twice`);
    values.set(key, [...(values.get(key) ?? []), part.slice(eq + 1)]);
  }
  const mac = values.has('mac') ? parseMac(values.get('mac')![0]!) : defaultMac(index);
  if (kind === 'tap') {
    const ifname = values.get('ifname')?.[0];
    if (ifname === undefined) throw usage('--nic tap needs ifname=NAME');
    return { kind, mac, ifname: checkIfname(ifname) };
  }
  const hostForwards = (values.get('hostfwd') ?? []).map(parseHostForward);
  const seen = new Set<string>();
  for (const f of hostForwards) {
    const key = `${f.protocol} ${f.hostAddress ?? '*'} ${f.hostPort}`;
    if (seen.has(key)) throw usage(`--nic user: host ${f.protocol} port ${f.hostPort} is forwarded twice`);
    seen.add(key);
  }
  return { kind, mac, hostForwards };
}

/** Checks the NICs of one machine together: no MAC, TAP interface or forwarded host port twice. */
export function checkNics(nics: readonly NicConfig[]): void {
  if (nics.length > MAX_NICS) throw usage(`${nics.length} NICs; at most ${MAX_NICS}`);
  const macs = new Set<string>();
  const ifnames = new Set<string>();
  const ports = new Set<string>();
  for (const nic of nics) {
    if (macs.has(nic.mac)) throw usage(`two NICs have the MAC address ${nic.mac}`);
    macs.add(nic.mac);
    if (nic.kind === 'tap') {
      if (ifnames.has(nic.ifname)) throw usage(`two NICs use the TAP interface ${nic.ifname}`);
      ifnames.add(nic.ifname);
    } else {
      for (const f of nic.hostForwards) {
        const key = `${f.protocol} ${f.hostPort}`;
        if (ports.has(key)) throw usage(`host ${f.protocol} port ${f.hostPort} is forwarded by two NICs`);
        ports.add(key);
      }
    }
  }
}
