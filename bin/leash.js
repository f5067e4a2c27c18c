#!/usr/bin/env node
// The `leash` command. tsx compiles the TypeScript sources on the fly, so no build step is needed.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
