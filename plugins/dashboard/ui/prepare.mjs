// `npm ci` / `npm install` run this (the `prepare` script): build the dashboard into plugins/dashboard/dist.
// An install without dev dependencies (`--omit=dev`) has no Vite: say how to build it instead of failing.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require.resolve('vite/package.json');
  require.resolve('svelte/package.json');
} catch {
  console.warn('tenement: the dashboard was not built (no dev dependencies); install them and run `npm run build:dashboard`');
  process.exit(0);
}
const npm = process.env.npm_execpath;
const result = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build:dashboard'], { stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build:dashboard'], { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(result.status ?? 1);
