// Every command answers -h and --help with its own usage on stdout and status 0, however the rest
// of the line looks; `-h` as an option's value stays a value.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { main } from '../../src/cli/main.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');

for (const command of COMMANDS) {
  test(`tsvmm ${command.name} --help and -h print its usage on stdout, status 0`, () => {
    for (const flag of ['--help', '-h']) {
      const r = spawnSync(process.execPath, [BIN, command.name, flag], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${flag}: ${r.stderr}`);
      assert.equal(r.stdout, command.usage, flag);
      assert.equal(r.stderr, '', flag);
    }
  });
}

test('help wins over other options, even bad ones, but not after -- or as a value', async () => {
  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const status = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
    return { status, out, err };
  };
  const usage = COMMANDS.find((c) => c.name === 'disasm')!.usage;
  for (const argv of [['disasm', '--bogus', '-h'], ['disasm', 'a', 'b', '--help'], ['disasm', '--mode', '99', '-h']]) {
    assert.deepEqual(await run(argv), { status: 0, out: usage, err: '' }, argv.join(' '));
  }
  // After --, -h is a FILE; as --org's value it is a (bad) address.
  const dashdash = await run(['disasm', '--', '-h']);
  assert.equal(dashdash.status, 2);
  assert.match(dashdash.err, /cannot read '-h'/);
  const value = await run(['disasm', 'x', '--org=-h']);
  assert.equal(value.status, 2);
  assert.match(value.err, /bad --org '-h'/);
});
