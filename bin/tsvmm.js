#!/usr/bin/env node
// The `tsvmm` command. The TypeScript sources are compiled to dist/ by `npm install` (the `prepare` script).
// cli() calls back once stdout and stderr have drained; this is the only process.exit in tsvmm.
import { cli } from '../dist/src/cli/main.js';

cli(process.argv.slice(2), (status) => process.exit(status));
