/**
 * The bench runner: `npm run bench -- NAME` runs bench/NAME.ts (its exported run()).
 * Every benchmark prints its figure as a ratio to a reference measured in the same run.
 */
const BENCHES = ['exit-cost', 'decode', 'soft-mips', 'boot', 'workload', 'blk', 'net', 'smp', 'virtio-fuzz', 'fuzz-decode', 'gdb-fuzz', 'xz', 'restore'];

async function main(): Promise<number> {
  const names = process.argv.slice(2);
  if (names.length === 0 || names.some((n) => !BENCHES.includes(n))) {
    process.stderr.write(`usage: npm run bench -- NAME...\nbenchmarks: ${BENCHES.join(', ')}\n`);
    return 2;
  }
  for (const name of names) {
    const mod = (await import(`./${name}.js`)) as { run?: () => Promise<void>; bench?: () => Promise<void> };
    await (mod.run ?? mod.bench)!();
  }
  return 0;
}

process.exitCode = await main();
