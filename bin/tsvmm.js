#!/usr/bin/env node
// The `tsvmm` command. The TypeScript sources are compiled to dist/ by `npm install` (the `prepare` script).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`tsvmm: internal error: ${err?.stack ?? err}\n`);
    process.exit(70);
  },
);
