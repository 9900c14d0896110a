#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `ten` works from a fresh clone without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
