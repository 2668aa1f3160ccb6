// The exec agent: guests/agent/tsvmm-agent.sh run by the host's busybox (applets only on its PATH,
// as in the guest) over a pair of pipes standing in for the virtio-console port, driven by
// src/vmm/agent.ts; then the host side alone against a scripted, hostile agent.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TsvmmError, type ErrorCode } from '../../src/common/errors.js';
import { AGENT_SCRIPT } from '../../src/loader/initramfs-init.js';
import { Agent, AGENT_MAX_HEADER_BYTES } from '../../src/vmm/agent.js';

const BUSYBOX = '/bin/busybox';

function isCode(code: ErrorCode, detail?: (d: Record<string, unknown>) => boolean) {
  return (e: unknown): boolean => e instanceof TsvmmError && e.code === code && (detail === undefined || detail(e.detail ?? {}));
}

interface BusyboxAgent {
  agent: Agent;
  child: ChildProcessWithoutNullStreams;
  dir: string;
  stop(): Promise<void>;
}

/** A process's state letter (Z: a zombie, killed and not yet reaped by its new parent), or 'gone'. */
function processState(pid: string): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return 'gone';
  }
}

/** The agent script under busybox sh with a PATH of busybox applets only, on pipes. */
function startBusyboxAgent(): BusyboxAgent | string {
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (apt-get install busybox-static)`;
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-agent-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const install = spawnSync(BUSYBOX, ['--install', '-s', bin], { encoding: 'utf8' });
  if (install.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `busybox --install failed: ${install.stderr}`;
  }
  const child = spawn(BUSYBOX, ['sh', AGENT_SCRIPT, '--stdio'], {
    cwd: dir,
    env: { PATH: bin, TSVMM_AGENT_DIR: join(dir, 'work') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr.resume(); // the shell's own job messages ("Killed")
  const agent = Agent.overStreams(child.stdout, child.stdin);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    agent,
    child,
    dir,
    async stop() {
      child.stdin.end(); // the agent's read sees EOF and it exits
      await exited;
      agent.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('agent over busybox: exit status, stdout and stderr apart, binary output, sequential and queued execs', async (t) => {
  const a = startBusyboxAgent();
  if (typeof a === 'string') return t.skip(a);
  try {
    await a.agent.whenReady(30_000);
    const r = await a.agent.exec('echo $((6*7)); exit 3');
    assert.equal(r.stdout.toString(), '42\n');
    assert.equal(r.stderr.length, 0);
    assert.equal(r.code, 3);

    const s = await a.agent.exec('echo to-out; echo to-err >&2; echo more-out');
    assert.deepEqual([s.stdout.toString(), s.stderr.toString(), s.code], ['to-out\nmore-out\n', 'to-err\n', 0]);

    // Every byte value, on both streams (printf's octal escapes), and a command with quotes and
    // newlines in it (the request carries it in base64).
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const octal = [...all].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    const b = await a.agent.exec(`printf '${octal}'\nprintf '${octal}${octal}' >&2\n  echo "it's"  >/dev/null`);
    assert.deepEqual(b.stdout, all);
    assert.deepEqual(b.stderr, Buffer.concat([all, all]));
    assert.equal(b.code, 0);

    // Larger than a pipe's buffer.
    const big = await a.agent.exec('seq 1 40000');
    assert.equal(big.stdout.toString(), Array.from({ length: 40000 }, (_, i) => `${i + 1}\n`).join(''));

    // Queued calls run one at a time, in order, each with its own output.
    const many = await Promise.all([1, 2, 3, 4].map((n) => a.agent.exec(`echo n=${n}; exit ${n}`)));
    assert.deepEqual(many.map((m) => [m.stdout.toString(), m.code]), [['n=1\n', 1], ['n=2\n', 2], ['n=3\n', 3], ['n=4\n', 4]]);

    // A signal is 128 + N; an empty command exits 0; stdin is /dev/null.
    assert.equal((await a.agent.exec('kill -TERM $$')).code, 128 + 15);
    assert.equal((await a.agent.exec('')).code, 0);
    assert.equal((await a.agent.exec('cat; echo eof')).stdout.toString(), 'eof\n');
  } finally {
    await a.stop();
  }
});

test('agent over busybox: a command that does not end is killed at its timeout and the next exec works', async (t) => {
  const a = startBusyboxAgent();
  if (typeof a === 'string') return t.skip(a);
  try {
    await a.agent.whenReady(30_000);
    await assert.rejects(a.agent.exec('echo started; sleep 1000; echo never', { timeoutMs: 500 }), (e: unknown) => {
      assert.ok(isCode('TSVMM_TIMEOUT', (d) => d['reason'] === 'command')(e), String(e));
      assert.equal(((e as TsvmmError).detail!['stdout'] as Buffer).toString(), 'started\n');
      return true;
    });
    const r = await a.agent.exec('echo after');
    assert.deepEqual([r.stdout.toString(), r.code], ['after\n', 0]);

    // The whole session dies at the timeout, children in the background too.
    await assert.rejects(a.agent.exec(`sleep 1000 & echo $! > ${a.dir}/bg; wait`, { timeoutMs: 500 }), isCode('TSVMM_TIMEOUT'));
    const bg = readFileSync(join(a.dir, 'bg'), 'utf8').trim();
    assert.ok(['gone', 'Z'].includes(processState(bg)), `the background sleep ${bg} is ${processState(bg)}`);

    // A background child that keeps stdout open does not hold the reply back (nor leak into the next).
    const bgPid = join(a.dir, 'bg2');
    const early = await a.agent.exec(`(sleep 1000; echo late) & echo $$ > ${bgPid}; echo early`, { timeoutMs: 120_000 });
    assert.equal(early.stdout.toString(), 'early\n');
    assert.equal((await a.agent.exec('echo next')).stdout.toString(), 'next\n');
    process.kill(-Number(readFileSync(bgPid, 'utf8').trim()), 'SIGKILL'); // its session (pgid = the command's pid)
  } finally {
    await a.stop();
  }
});

test('agent over busybox: output beyond the cap is TSVMM_LIMIT with what fit; the channel stays usable', async (t) => {
  const a = startBusyboxAgent();
  if (typeof a === 'string') return t.skip(a);
  try {
    await a.agent.whenReady(30_000);
    await assert.rejects(a.agent.exec('seq 1 1000; echo e >&2; exit 5', { maxOutputBytes: 10 }), (e: unknown) => {
      assert.ok(isCode('TSVMM_LIMIT')(e), String(e));
      const d = (e as TsvmmError).detail!;
      assert.equal((d['stdout'] as Buffer).toString(), '1\n2\n3\n4\n5\n');
      assert.equal((d['stderr'] as Buffer).toString(), 'e\n');
      assert.equal(d['code'], 5);
      assert.equal(d['stdoutSize'], 3893);
      return true;
    });
    assert.equal((await a.agent.exec('echo fine', { maxOutputBytes: 10 })).stdout.toString(), 'fine\n');
  } finally {
    await a.stop();
  }
  // The agent gone: the exec fails, and so does every later one.
  await assert.rejects(a.agent.exec('echo x'), isCode('TSVMM_AGENT_CLOSED'));
});

/** The host side against bytes a test writes as the agent. */
function scripted(options: { replyGraceMs?: number; maxOutputBytes?: number } = {}) {
  const sent: string[] = [];
  const agent = new Agent({ write: (bytes) => void sent.push(Buffer.from(bytes).toString('latin1')) }, options);
  const say = (text: string | Uint8Array): void => agent.receive(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  return { agent, sent, say };
}

test('agent host side: request framing, replies split anywhere, hello first', async () => {
  const { agent, sent, say } = scripted();
  const p = agent.exec('echo hi', { timeoutMs: 60_000, maxOutputBytes: 100 });
  await Promise.resolve();
  assert.deepEqual(sent, [], 'nothing is sent before the hello');
  say('tsvmm-agent 1\n');
  assert.equal(sent.length, 1);
  const m = /^E 1 (\d+) 100 (\S+)\n$/.exec(sent[0]!);
  assert.ok(m, sent[0]);
  assert.ok(Number(m[1]) <= 60_000 && Number(m[1]) > 0);
  assert.equal(Buffer.from(m[2]!, 'base64').toString(), 'echo hi');
  // The reply one byte at a time.
  for (const byte of Buffer.from('R 1 7 3 2 3 2\nhi\ne\n', 'latin1')) say(Uint8Array.of(byte));
  const r = await p;
  assert.deepEqual([r.stdout.toString(), r.stderr.toString(), r.code], ['hi\n', 'e\n', 7]);
  // Two replies in one chunk.
  const q1 = agent.exec('a');
  const q2 = agent.exec('b');
  await Promise.resolve();
  say('R 2 0 1 0 1 0\nxR 3 1 0 0 0 0\n');
  assert.equal((await q1).stdout.toString(), 'x');
  assert.equal((await q2).code, 1);
  assert.match(sent[1]!, /^E 2 /);
  assert.match(sent[2]!, /^E 3 /);
  // A refusal fails that exec only.
  const f = agent.exec('c');
  say('F 4 bad-base64\n');
  await assert.rejects(f, isCode('TSVMM_AGENT_PROTOCOL', (d) => d['reason'] === 'bad-base64'));
  const d = agent.exec('d');
  say('R 5 0 0 0 0 0\n');
  assert.equal((await d).code, 0);
  agent.close();
});

test('agent host side: no reply is TSVMM_TIMEOUT; the late reply is dropped and the next exec works', async () => {
  const { agent, sent, say } = scripted({ replyGraceMs: 0 });
  say('tsvmm-agent 1\n');
  await assert.rejects(agent.exec('sleep 1d', { timeoutMs: 20 }), isCode('TSVMM_TIMEOUT', (d) => d['reason'] === 'agent'));
  const next = agent.exec('echo 2', { timeoutMs: 60_000 });
  say('R 1 T 5 0 5 0\nstale');
  say('R 2 0 2 0 2 0\n2\n');
  assert.deepEqual((await next).stdout.toString(), '2\n');
  assert.equal(sent.length, 2);
  agent.close();
});

test('agent host side: no hello is TSVMM_TIMEOUT; a hello mid-command loses that command only', async () => {
  const { agent, sent, say } = scripted({ replyGraceMs: 0 });
  await assert.rejects(agent.whenReady(10), isCode('TSVMM_TIMEOUT', (d) => d['reason'] === 'hello'));
  await assert.rejects(agent.exec('x', { timeoutMs: 10 }), isCode('TSVMM_TIMEOUT', (d) => d['reason'] === 'queued'));
  assert.equal(sent.length, 0);
  say('tsvmm-agent 1\n');
  const lost = agent.exec('y');
  say('tsvmm-agent 1\n');
  await assert.rejects(lost, isCode('TSVMM_AGENT_CLOSED'));
  const ok = agent.exec('z');
  say('R 2 0 0 0 0 0\n');
  assert.equal((await ok).code, 0);
  agent.close();
});

test('agent host side: a hostile or garbled reply stream is TSVMM_AGENT_PROTOCOL, never a hang or unbounded memory', async () => {
  const cases: [string, (say: (t: string | Uint8Array) => void) => void][] = [
    ['garbage', (say) => say('hello there\n')],
    ['garbage before the hello', (say) => say('\x00\x01junk\ntsvmm-agent 1\n')],
    ['another protocol version', (say) => say('tsvmm-agent 2\n')],
    ['an endless header line', (say) => say(new Uint8Array(1 << 20).fill(0x41))],
    ['a reply for a request never sent', (say) => say('tsvmm-agent 1\nR 9 0 0 0 0 0\n')],
    ['a reply sending more than the cap', (say) => say('tsvmm-agent 1\nR 1 0 999999 0 999999 0\n')],
    ['a reply sending more than it says was written', (say) => say('tsvmm-agent 1\nR 1 0 1 0 2 0\nab')],
    ['a status beyond 255', (say) => say('tsvmm-agent 1\nR 1 256 0 0 0 0\n')],
    ['sizes that are not decimal', (say) => say('tsvmm-agent 1\nR 1 0 0x10 0 0 0\n')],
    ['a negative size', (say) => say('tsvmm-agent 1\nR 1 0 -1 0 0 0\n')],
    ['a huge size', (say) => say('tsvmm-agent 1\nR 1 0 99999999999999999999 0 0 0\n')],
    ['a refusal with a strange reason', (say) => say('tsvmm-agent 1\nF 1 $(reboot)\n')],
    ['a short header', (say) => say('tsvmm-agent 1\nR 1 0\n')],
  ];
  for (const [what, feed] of cases) {
    const { agent, say } = scripted({ maxOutputBytes: 1000 });
    const p = agent.exec('true', { timeoutMs: 60_000 });
    feed(say);
    await assert.rejects(p, isCode('TSVMM_AGENT_PROTOCOL'), what);
    // The channel is not trusted again.
    await assert.rejects(agent.exec('true'), isCode('TSVMM_AGENT_PROTOCOL'), what);
    assert.equal(agent.ready, false, what);
  }
  // The stream ending in the middle of a reply.
  const { agent, say } = scripted();
  const p = agent.exec('true');
  say('tsvmm-agent 1\nR 1 0 10 0 10 0\nabc');
  agent.end();
  await assert.rejects(p, isCode('TSVMM_AGENT_CLOSED'));
  assert.ok(AGENT_MAX_HEADER_BYTES < 1 << 20);
});

test('agent host side: bad arguments are refused before anything is sent', async () => {
  const { agent, sent, say } = scripted();
  say('tsvmm-agent 1\n');
  await assert.rejects(agent.exec('x'.repeat(64 * 1024 + 1)), isCode('TSVMM_LIMIT'));
  await assert.rejects(agent.exec('a\0b'), isCode('TSVMM_BAD_ARGUMENT'));
  await assert.rejects(agent.exec('x', { timeoutMs: 0 }), isCode('TSVMM_BAD_ARGUMENT'));
  await assert.rejects(agent.exec('x', { timeoutMs: 1.5 }), isCode('TSVMM_BAD_ARGUMENT'));
  await assert.rejects(agent.exec('x', { maxOutputBytes: 0 }), isCode('TSVMM_BAD_ARGUMENT'));
  assert.throws(() => new Agent({ write() {} }, { maxOutputBytes: -1 }), isCode('TSVMM_BAD_ARGUMENT'));
  await assert.rejects(new Agent({ write() {} }).whenReady(-5), isCode('TSVMM_BAD_ARGUMENT'));
  assert.deepEqual(sent, []);
  agent.close();
});
