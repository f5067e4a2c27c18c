#!/usr/bin/env node
// The `leash` command: the compiled CLI (`npm run build`, run by `npm install` in a clone).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('leash: dist/ is missing; run `npm run build` in the leash checkout first\n');
  process.exit(2);
}
await import(entry.href);
