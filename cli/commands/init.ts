/** `ten init`: writes a starting ./tenement.config.ts for the app in the current directory. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../client.ts';
import { color, out } from '../output.ts';
import { checkLabel, examples } from './common.ts';

interface InitFlags {
  name?: string;
  command?: string;
}

interface Detected {
  /** 'Node', 'Python', ... or null when nothing was recognised. */
  kind: string | null;
  command: string;
  /** Why this command: shown to the user and written as a comment. */
  why: string;
  /** A name the project gives itself (package.json), if any. */
  name?: string;
}

function readPackageJson(dir: string): { name?: unknown; main?: unknown; scripts?: { start?: unknown } } | null {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as ReturnType<typeof readPackageJson>;
  } catch (error) {
    throw new CliError(`cannot read package.json: ${(error as Error).message}`);
  }
}

/** Anything a shell would expand or interpret: such a start script only runs as written through npm (a shell). */
const SHELL_SYNTAX = /[$`'"\\|&;<>(){}*?~!#]/;

/**
 * The command a package.json start script runs, when it can be run without npm: `node [flags] file [args]`, or a
 * program of node_modules/.bin (`tsx server.ts`). Null for anything a shell must interpret (variables, `&&`,
 * quotes, `FOO=bar cmd`): npm runs those through sh.
 */
export function directStart(dir: string, script: string): string | null {
  const words = script.trim().split(/\s+/);
  const program = words[0];
  if (!program || words.some((word) => SHELL_SYNTAX.test(word)) || program.includes('=')) return null;
  if (program === 'node') return words.join(' ');
  if (!program.includes('/') && existsSync(path.join(dir, 'node_modules', '.bin', program))) return ['./node_modules/.bin/' + program, ...words.slice(1)].join(' ');
  return null;
}

/** What kind of app lives in `dir` and how it is started, from the files a project of each kind has. */
export function detect(dir: string): Detected {
  const has = (file: string): boolean => existsSync(path.join(dir, file));
  if (has('package.json')) {
    const pkg = readPackageJson(dir);
    const name = typeof pkg?.name === 'string' ? pkg.name.replace(/^@[^/]+\//, '') : undefined;
    const base = { kind: 'Node', ...(name ? { name } : {}) };
    const start = pkg?.scripts?.start;
    if (typeof start === 'string') {
      // npm start adds an npm process (about 50 MB) in front of every tenant's copy: run what the script runs.
      const direct = directStart(dir, start);
      if (direct) return { ...base, command: direct, why: 'the start script of package.json, run without npm' };
      return { ...base, command: 'npm start', why: 'package.json start script, which needs a shell; npm costs about 50 MB per tenant: put the command it runs here' };
    }
    if (typeof pkg?.main === 'string') return { ...base, command: `node ${pkg.main}`, why: 'package.json main' };
    const entry = ['server.js', 'app.js', 'index.js', 'server.mjs', 'app.mjs', 'index.mjs'].find(has) ?? 'index.js';
    return { ...base, command: `node ${entry}`, why: `package.json without main or start: ${entry}` };
  }
  if (has('pyproject.toml') || has('requirements.txt') || has('app.py') || has('main.py')) {
    const entry = !has('app.py') && has('main.py') ? 'main.py' : 'app.py';
    // -u: unbuffered output, so each line reaches `ten logs` when it is printed, not when a buffer fills.
    return { kind: 'Python', command: `python3 -u ${entry}`, why: `Python project (${entry})` };
  }
  if (has('go.mod')) return { kind: 'Go', command: 'go run .', why: 'go.mod' };
  if (has('Cargo.toml')) return { kind: 'Rust', command: 'cargo run --release', why: 'Cargo.toml' };
  return { kind: null, command: './start-my-app', why: 'no known project files: replace this with the command that starts your app' };
}

/** A DNS label from a directory or package name: 'My_App' → 'my-app'. */
export function toLabel(text: string): string {
  const label = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '');
  return label || 'app';
}

/** True when `tenement/sdk` resolves from `dir`, i.e. the config may import defineConfig for type checking. */
function sdkResolvable(dir: string): boolean {
  try {
    createRequire(path.join(dir, 'noop.js')).resolve('tenement/sdk');
    return true;
  } catch {
    return false;
  }
}

const quote = (text: string): string => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export function renderConfig(name: string, command: string, why: string, withSdk: boolean): string {
  const body = `{
  settings: {
    domain: 'localhost', // tenants are reached at http://{id}.{service}.{domain}:{port}/
    port: 8080,
  },
  services: {
    ${/^[a-z_][a-z0-9_]*$/.test(name) ? name : quote(name)}: {
      command: ${quote(command)}, // ${why}
      // The app must listen on $HOST:$PORT and keep its files in $DATA_DIR (one directory per tenant).
      // health: '/health', // a path answering 2xx when ready; without one, a TCP connect is the check
      idleTimeout: '5m', // hibernate a tenant's copy after 5 minutes without traffic
      autoCreate: true, // start a copy for any tenant id on its first request
    },
  },
}`;
  const header = `// Tenement config: \`ten serve\` runs one copy of each service per tenant. \`ten config\` checks it.\n`;
  return withSdk
    ? `${header}import { defineConfig } from 'tenement/sdk';\n\nexport default defineConfig(${body});\n`
    : `${header}// With tenement installed as a dependency, wrap this object in defineConfig() from 'tenement/sdk' for type checking.\nexport default ${body};\n`;
}

export function registerInit(program: Command): void {
  const command = program
    .command('init')
    .description('Write ./tenement.config.ts for the app in this directory (Node, Python, Go, Rust detected); never overwrites')
    .option('--name <service>', 'service name (default: the package or directory name)')
    .option('--command <command>', 'command that starts the app (default: detected)')
    .action(async (flags: InitFlags) => {
      const dir = process.cwd();
      if (flags.name !== undefined) checkLabel(flags.name, 'service name');
      // Loaded on use: the loader brings the config schema (zod), which only this action needs, for its file names.
      const { CONFIG_FILE_NAMES } = await import('../../core/config/loader.ts');
      const existing = CONFIG_FILE_NAMES.find((file) => existsSync(path.join(dir, file)));
      if (existing) throw new CliError(`${path.join(dir, existing)} already exists; edit it, or remove it to start over`);
      const detected = detect(dir);
      const name = flags.name !== undefined ? checkLabel(flags.name, 'service name') : toLabel(detected.name ?? path.basename(dir));
      const startCommand = flags.command ?? detected.command;
      const why = flags.command !== undefined ? 'given with --command' : detected.why;
      const file = path.join(dir, 'tenement.config.ts');
      // 'wx': if another process wrote the file since the check above, fail rather than overwrite it.
      writeFileSync(file, renderConfig(name, startCommand, why, sdkResolvable(dir)), { flag: 'wx' });

      const found = detected.kind && flags.command === undefined ? ` (${detected.kind}: ${detected.why})` : '';
      out(`created ${color.bold('tenement.config.ts')}: service ${color.bold(name)} runs \`${startCommand}\`${found}`);
      out('');
      out('Next steps:');
      if (!detected.kind && flags.command === undefined) out(`  - edit ${color.bold('command')} in tenement.config.ts: it is a placeholder`);
      out('  - make the app listen on $HOST:$PORT and keep its files in $DATA_DIR');
      out(`  - ${color.cyan('ten config')}     check the config`);
      out(`  - ${color.cyan('ten serve')}      start the server`);
      out(`  - ${color.cyan(`curl http://alice.${name}.localhost:8080/`)}   alice's own copy of the app`);
    });
  examples(command, [
    ['ten init', 'detect the app in this directory'],
    ['ten init --name notes --command "node server.js"'],
  ]);
}
