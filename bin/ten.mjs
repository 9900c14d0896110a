#!/usr/bin/env node
// `ten`. The installed package runs its compiled JavaScript (dist/, built by `npm run build` before packing), so
// no TypeScript of ours is transpiled at run time. A checkout runs its sources through tsx instead, with no build
// step, even when an old dist/ is lying around (a pack leaves one): cli/main.ts next to this file marks a
// checkout, since the package ships no sources. TENEMENT_DIST=1 runs a checkout's dist/ (to measure it).
import { existsSync } from 'node:fs';
import nodeModule from 'node:module';

// Node 22.1+ caches the compiled code of what it loads on disk, which most of a quick command's start-up is.
// Node 20 lacks it; a cache that cannot be written is Node's business (it runs uncached).
nodeModule.enableCompileCache?.();

const checkout = existsSync(new URL('../cli/main.ts', import.meta.url));
const compiled = new URL('../dist/cli/main.js', import.meta.url);

if (!checkout || (process.env.TENEMENT_DIST === '1' && existsSync(compiled))) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  // `tenement/sdk` in a checkout resolves to the sources (the package's `tenement-source` export condition)
  // rather than to a dist/ that may be missing or stale.
  // registerHooks where Node has it: module.register() is deprecated from Node 26 (and warns on stderr).
  const { register: registerLoader, registerHooks } = await import('node:module');
  const hooks = new URL('./source-condition.mjs', import.meta.url);
  if (registerHooks) registerHooks({ resolve: (await import(hooks.href)).resolve });
  else registerLoader(hooks);
  await import('../cli/main.ts');
}
