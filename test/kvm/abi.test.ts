// Checks every struct offset and ioctl number in backends/kvm/abi.ts against <linux/kvm.h>,
// by generating a C program that prints offsetof/sizeof and the ioctl macros, compiled with gcc.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { IOCTL, STRUCTS } from '../../src/backends/kvm/abi.js';
import { hasTool, run, withTempDir } from '../helpers/tools.js';

test('kvm ABI layouts and ioctl numbers match <linux/kvm.h>', (t) => {
  if (!hasTool('gcc')) return t.skip('gcc not installed (needed to read <linux/kvm.h>)');
  const lines: string[] = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/kvm.h>', 'int main(void) {'];
  const expected = new Map<string, number>();
  for (const [struct, fields] of Object.entries(STRUCTS)) {
    for (const [field, value] of Object.entries(fields)) {
      const key = `${struct}.${field}`;
      expected.set(key, value);
      const expr = field === 'size' ? `sizeof(struct ${struct})` : `offsetof(struct ${struct}, ${field})`;
      lines.push(`  printf("${key} %zu\\n", (size_t)(${expr}));`);
    }
  }
  for (const [name, value] of Object.entries(IOCTL)) {
    expected.set(name, value);
    lines.push(`  printf("${name} %lu\\n", (unsigned long)(${name}));`);
  }
  lines.push('  return 0;', '}');
  const output = withTempDir((dir) => {
    writeFileSync(join(dir, 'abi.c'), lines.join('\n'));
    run('gcc', ['-o', join(dir, 'abi'), join(dir, 'abi.c')]);
    return run(join(dir, 'abi'), []);
  });
  const actual = new Map(output.trim().split('\n').map((l) => {
    const [k, v] = l.split(' ');
    return [k!, Number(v)] as const;
  }));
  const wrong = [...expected].filter(([k, v]) => actual.get(k) !== v).map(([k, v]) => `${k}: ours ${v}, header ${actual.get(k)}`);
  assert.deepEqual(wrong, []);
  assert.ok(expected.size > 100, `checked ${expected.size} values`);
});
