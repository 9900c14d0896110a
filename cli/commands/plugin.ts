/**
 * `ten plugin add|list|remove`: sandboxed plugins (WebAssembly components, or TypeScript built into one) and
 * trusted in-process plugins (npm packages), recorded in the config: a JSON config is rewritten, a code config
 * gets the `tenement.plugins.json` sidecar the loader merges (core/config/plugin-records.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, readFileSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { WASM_PLUGINS_KEY, addPluginRecord, importPlugin, removePluginRecord } from '../../core/config/plugin-records.ts';
import { CliError, type ClientFlags } from '../client.ts';
import { color, out, printJson, table } from '../output.ts';
import { clientOptions, connect, examples } from './common.ts';

interface AddFlags {
  config?: string;
  name?: string;
  hooks?: string;
  grant?: string;
  failClosed?: boolean;
  failOpen?: boolean;
  timeout?: string;
  memory?: string;
}

/** The first bytes of a WebAssembly component (a core module has version 1 where a component has 0x0d). */
const COMPONENT_HEADER = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);

function isComponent(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    readSync(fd, head, 0, 8, 0);
    return head.equals(COMPONENT_HEADER);
  } finally {
    closeSync(fd);
  }
}

const list = (text: string | undefined): string[] | undefined =>
  text === undefined ? undefined : text.split(',').map((s) => s.trim()).filter(Boolean);

/** A .wasm component, or a .ts/.js source built into one next to it; recorded as a sandboxed plugin. */
async function addWasm(target: string, configFile: string, flags: AddFlags): Promise<void> {
  const { buildPlugin, exportedHooks } = await import('../../plugins/wasm-plugins/build.ts');
  const { defaultPluginName, wasmPluginSchema } = await import('../../plugins/wasm-plugins/options.ts');
  const source = path.resolve(target);
  if (!existsSync(source)) throw new CliError(`${target} does not exist`);
  if (flags.failOpen && flags.failClosed) throw new CliError('--fail-open and --fail-closed contradict each other: pass one', 'TNM_ERR_CONFIG_INVALID');
  let component = source;
  let hooks = list(flags.hooks);
  if (!source.endsWith('.wasm')) {
    hooks ??= exportedHooks(readFileSync(source, 'utf8'));
    if (hooks.length === 0) throw new CliError(`${target} exports none of auth, route, onEvent: export the hooks, or pass --hooks`);
    component = source.replace(/\.[mc]?[jt]s$/, '.wasm');
    process.stderr.write(`building ${path.relative(process.cwd(), component)} (a few seconds)...\n`);
    await buildPlugin(source, component);
  } else if (!isComponent(source)) {
    throw new CliError(`${target} is not a WebAssembly component (a core module or another file); build plugins for sdk/wit/plugin.wit`);
  }
  if (!hooks) throw new CliError('which hooks does this component implement? pass --hooks auth,route,on-event');
  const capabilities = Object.fromEntries((list(flags.grant) ?? []).map((name) => [name, true]));
  const entry: Record<string, unknown> = {
    name: flags.name ?? defaultPluginName(component),
    path: path.relative(path.dirname(configFile), component) || component,
    hooks,
    ...(Object.keys(capabilities).length > 0 ? { capabilities } : {}),
    // Written out either way it was asked for, so the config says it whatever the default.
    ...(flags.failOpen ? { failClosed: false } : flags.failClosed ? { failClosed: true } : {}),
    ...(flags.timeout ? { timeout: flags.timeout } : {}),
    ...(flags.memory ? { memory: flags.memory } : {}),
  };
  if (!String(entry.path).startsWith('.') && !path.isAbsolute(String(entry.path))) entry.path = `./${String(entry.path)}`;
  const checked = wasmPluginSchema.safeParse(entry);
  if (!checked.success) {
    throw new CliError(checked.error.issues.map((i) => `${i.path.join('.') || 'plugin'}: ${i.message}`).join('; '), 'TNM_ERR_CONFIG_INVALID');
  }
  const file = addPluginRecord(configFile, { kind: 'wasm', entry: entry as Record<string, unknown> & { name: string } });
  out(`added sandboxed plugin '${String(entry.name)}' (${hooks.join(', ')}) to ${file}; restart \`ten serve\` to load it`);
}

/** The package name an npm install spec installs: `pkg@1`, `@scope/pkg@^2`, or a local folder's package.json name. */
function packageName(spec: string): string {
  const local = spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:');
  if (local) {
    const dir = path.resolve(spec.replace(/^file:/, ''));
    const manifest = path.join(dir, 'package.json');
    if (!existsSync(manifest)) throw new CliError(`${spec}: no package.json there`);
    const name = (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name;
    if (typeof name !== 'string') throw new CliError(`${manifest} has no name`);
    return name;
  }
  const match = /^(@[^/@]+\/[^/@]+|[^/@]+)(@.*)?$/.exec(spec);
  if (!match) throw new CliError(`'${spec}' is not an npm package name, a .wasm component or a .ts source`);
  return match[1]!;
}

/** An npm package (or a local package folder): installed next to the config, recorded as a trusted plugin. */
async function addNpm(spec: string, configFile: string): Promise<void> {
  const name = packageName(spec);
  const dir = path.dirname(configFile);
  const installed = spawnSync('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', spec.startsWith('.') ? path.resolve(spec) : spec], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (installed.status !== 0) throw new CliError(`npm install ${spec} failed (exit ${installed.status ?? installed.signal})`);
  const plugin = (await importPlugin(name, configFile)) as { name?: unknown; setup?: unknown };
  if (typeof plugin !== 'object' || plugin === null || typeof plugin.name !== 'string' || typeof plugin.setup !== 'function') {
    throw new CliError(`${name} is installed but its default export is not a plugin (expected definePlugin({ name, setup, ... }))`);
  }
  const file = addPluginRecord(configFile, { kind: 'npm', name });
  out(`added in-process plugin '${plugin.name}' (package ${name}; it runs with the server's rights) to ${file}; restart \`ten serve\` to load it`);
}

interface PluginRow {
  name: string;
  kind: string;
  hooks: string[];
  detail: string;
}

interface ServerListing {
  plugins: Array<{ name: string; kind: 'kernel'; hooks: string[] }>;
  wasm: Array<{ name: string; path: string; hooks: string[]; capabilities: string[]; failClosed: boolean; timeoutMs: number; calls: Record<string, number> }>;
}

function printRows(rows: PluginRow[], from: string): void {
  out(table(['PLUGIN', 'KIND', 'HOOKS', 'DETAIL'], rows.map((r) => [r.name, r.kind, r.hooks.join(', ') || '-', r.detail])));
  out(color.dim(from));
}

function wasmDetail(plugin: { path: string; capabilities: string[]; failClosed: boolean; timeoutMs: number }): string {
  const grants = plugin.capabilities.length > 0 ? `grants ${plugin.capabilities.join(',')}` : 'no grants';
  return `${path.basename(plugin.path)}, ${grants}, ${plugin.failClosed ? 'fail-closed' : 'fail-open'}, ${plugin.timeoutMs}ms`;
}

/** Without a server: what the config would load (kernel plugins' hooks are only known once they are set up). */
async function listFromConfig(flags: ClientFlags): Promise<{ listing: ServerListing; rows: PluginRow[] }> {
  const { loadConfig } = await import('../../core/config/loader.ts');
  const config = await loadConfig({ file: flags.config });
  const { defaultPlugins } = await import('../default-plugins.ts');
  const { parseWasmPluginsOptions } = await import('../../plugins/wasm-plugins/options.ts');
  const names = [...defaultPlugins, ...(config.plugins as unknown[])].map((entry) => {
    const definition = (Array.isArray(entry) ? entry[0] : entry) as { name?: unknown };
    return typeof definition?.name === 'string' ? definition.name : '(invalid)';
  });
  const wasm = parseWasmPluginsOptions(config.pluginOptions[WASM_PLUGINS_KEY], config.source.dir);
  const listing: ServerListing = {
    plugins: names.map((name) => ({ name, kind: 'kernel', hooks: [] })),
    wasm: wasm.map((p) => ({
      name: p.name,
      path: p.path,
      hooks: p.hooks,
      capabilities: Object.entries(p.capabilities).filter(([, on]) => on).map(([n]) => n),
      failClosed: p.failClosed,
      timeoutMs: p.timeoutMs,
      calls: {},
    })),
  };
  const rows = [
    ...listing.plugins.map((p) => ({ name: p.name, kind: 'kernel', hooks: [], detail: 'hooks known once served' })),
    ...listing.wasm.map((p) => ({ name: p.name, kind: 'wasm', hooks: p.hooks, detail: wasmDetail(p) })),
  ];
  return { listing, rows };
}

async function listPlugins(flags: ClientFlags): Promise<void> {
  let listing: ServerListing;
  try {
    const client = await connect(flags);
    listing = await client.get<ServerListing>('/api/plugins');
  } catch (error) {
    // No server running: say what the config would load instead.
    if (!(error instanceof CliError) || !error.message.startsWith('cannot reach the server')) throw error;
    const offline = await listFromConfig(flags);
    if (flags.json) return printJson({ ...offline.listing, running: false });
    return printRows(offline.rows, `${error.message.replace(/: is .*$/, '')}: listed from the config`);
  }
  if (flags.json) return printJson({ ...listing, running: true });
  const calls = (counts: Record<string, number>): string => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    return total === 0 ? '' : `, ${total} calls`;
  };
  printRows(
    [
      ...listing.plugins.map((p) => ({ name: p.name, kind: 'kernel', hooks: p.hooks, detail: '' })),
      ...listing.wasm.map((p) => ({ name: p.name, kind: 'wasm', hooks: p.hooks, detail: wasmDetail(p) + calls(p.calls) })),
    ],
    'from the running server',
  );
}

export function registerPlugin(program: Command): void {
  const plugin = program.command('plugin').description('Add, list and remove plugins (sandboxed WebAssembly ones and trusted npm packages)');

  const add = plugin
    .command('add <path-or-package>')
    .description('Record a plugin in the config: a .wasm component or .ts source (sandboxed), or an npm package (in-process, trusted)')
    .option('-c, --config <file>', 'config file to record it in (default: $TENEMENT_CONFIG, else tenement.config.* found from the cwd up)')
    .option('--name <name>', 'sandboxed plugin name (default: the file name)')
    .option('--hooks <list>', 'hooks a sandboxed plugin implements: auth,route,on-event (default for a source: the ones it exports)')
    .option('--grant <list>', 'capabilities to grant a sandboxed plugin (log); it gets none by default')
    .option('--fail-open', 'auth: let the request through when the plugin cannot decide (trap, timeout, garbage) instead of answering 503')
    .option('--fail-closed', 'auth: answer 503 when the plugin cannot decide (the default, written into the config)')
    .option('--timeout <duration>', 'deadline of one call (default 100ms)')
    .option('--memory <size>', 'memory cap (default 32MB)')
    .action(async (target: string, flags: AddFlags) => {
      // Loaded on use: the loader brings the config schema (zod), which `ten --help` does not need.
      const { findConfigFile } = await import('../../core/config/loader.ts');
      const configFile = findConfigFile(flags.config);
      if (/\.(wasm|[mc]?ts|[mc]?js)$/.test(target)) await addWasm(target, configFile, flags);
      else await addNpm(target, configFile);
    });
  examples(add, [
    ['ten plugin add ./geo-auth.ts', 'build and record a sandboxed auth plugin (hooks from its exports)'],
    ['ten plugin add ./geo-auth.wasm --hooks auth --timeout 50ms'],
    ['ten plugin add ./hints.wasm --hooks auth --fail-open', 'a plugin whose failure should not block requests'],
    ['ten plugin add tenement-plugin-audit', 'npm install it and load it in-process'],
  ]);

  const ls = plugin
    .command('list')
    .description('Plugins the server has loaded and the hooks each taps (from the config when no server runs)')
    .action((flags: ClientFlags) => listPlugins(flags));
  clientOptions(ls, { json: true });
  examples(ls, [['ten plugin list'], ['ten plugin list --json']]);

  const remove = plugin
    .command('remove <name>')
    .description('Remove a plugin recorded by `ten plugin add` (an npm package stays installed)')
    .option('-c, --config <file>', 'config file (default: $TENEMENT_CONFIG, else tenement.config.* found from the cwd up)')
    .action(async (name: string, flags: { config?: string }) => {
      const { findConfigFile } = await import('../../core/config/loader.ts');
      const configFile = findConfigFile(flags.config);
      if (!removePluginRecord(configFile, name)) throw new CliError(`no plugin '${name}' recorded for ${configFile}`, 'TNM_ERR_NOT_FOUND');
      out(`removed plugin '${name}'; restart \`ten serve\` to unload it`);
    });
  examples(remove, [['ten plugin remove geo-auth']]);
}
