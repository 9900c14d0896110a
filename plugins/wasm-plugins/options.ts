import path from 'node:path';
import { z } from 'zod';
import { parseDuration, parseSize } from '../../core/config/units.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';

/** The hooks a plugin component can implement (sdk/wit/plugin.wit), by their config names. */
export const PLUGIN_HOOKS = ['auth', 'route', 'on-event'] as const;
export type PluginHook = (typeof PLUGIN_HOOKS)[number];

/**
 * What a plugin may be granted. It gets nothing by default: its world imports nothing but `log`, and the host
 * gives it no file system, no environment and no network whatever it asks for.
 */
export const CAPABILITIES = ['log'] as const;
const NOT_GRANTABLE: Record<string, string> = {
  fs: 'plugins get no file system',
  data: 'plugins get no file system',
  env: 'plugins never see the host environment',
  network: 'plugins get no network',
};

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SOURCE = /\.(wasm|ts|mts|js|mjs)$/;
/** 64 KiB wasm pages. */
const PAGE = 65_536;

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like '50ms' or '1s', got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined || bytes < PAGE) {
    ctx.addIssue({ code: 'custom', message: `expected a size of at least 64KiB like '32MB', got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return bytes;
});

const capabilities = z.record(z.string(), z.boolean()).superRefine((granted, ctx) => {
  for (const [name, on] of Object.entries(granted)) {
    if ((CAPABILITIES as readonly string[]).includes(name)) continue;
    const why = Object.hasOwn(NOT_GRANTABLE, name) ? NOT_GRANTABLE[name] : undefined;
    ctx.addIssue({
      code: 'custom',
      path: [name],
      message: why
        ? `'${name}' cannot be granted: ${why}${on ? '' : ' (remove the key)'}`
        : `unknown capability '${name}': expected one of ${CAPABILITIES.join(', ')}`,
    });
  }
});

export const wasmPluginSchema = z.strictObject({
  /** Unique name, used in logs, metrics and `ten plugin list`; default: the file name without extension. */
  name: z.string().regex(NAME, "expected a name of lowercase letters, digits and '-'").optional(),
  /** The component (.wasm), or its TypeScript/JavaScript source, built once and cached by content hash. */
  path: z.string().regex(SOURCE, 'expected a .wasm component or a .ts/.js source to build into one'),
  /** The hooks the host calls; the others are never called, so they cost nothing. */
  hooks: z
    .array(z.enum(PLUGIN_HOOKS, { message: `expected one of ${PLUGIN_HOOKS.join(', ')}` }))
    .min(1, `expected at least one hook: ${PLUGIN_HOOKS.join(', ')}`)
    .refine((hooks) => new Set(hooks).size === hooks.length, 'expected each hook once'),
  capabilities: capabilities.default({}),
  /**
   * auth: answer 503 when the plugin cannot decide (trap, timeout, invalid answer, queue full). The default, as
   * Envoy's ext_authz: otherwise a client who can make the plugin slow or fail (a huge or crafted header it chokes
   * on) walks past it. `false` lets such requests through, for a plugin that is a convenience, not a gate.
   */
  failClosed: z.boolean().default(true),
  /** Deadline of one call; past it the call is cut off and counts as no answer. */
  timeout: duration.default(100),
  /** Linear memory cap of the plugin's instance. */
  memory: size.default(32 * 1024 * 1024),
  /** The engine its calls run on: 'v8' (jco) or 'wasmtime' (falls back to V8, logged, where its library is missing). */
  engine: z.enum(['v8', 'wasmtime']).default('v8'),
});

export const wasmPluginsOptionsSchema = z
  .strictObject({
    plugins: z.array(wasmPluginSchema).default([]),
  })
  .default({ plugins: [] });

export type WasmPluginInput = z.input<typeof wasmPluginSchema>;
export type WasmPluginsOptions = z.input<typeof wasmPluginsOptionsSchema>;

/** One plugin as the host runs it: defaults filled in, path absolute, limits in host units. */
export interface WasmPluginConfig {
  name: string;
  path: string;
  hooks: PluginHook[];
  capabilities: { log: boolean };
  failClosed: boolean;
  timeoutMs: number;
  memoryPages: number;
  engine: 'v8' | 'wasmtime';
}

/** Validates `pluginOptions['wasm-plugins']`; every bad field is reported with its path. */
export function parseWasmPluginsOptions(raw: unknown, configDir: string): WasmPluginConfig[] {
  const parsed = wasmPluginsOptionsSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `pluginOptions.wasm-plugins.${issue.path.map(String).join('.')}: ${issue.message}`)
      .join('; ');
    throw new TenementError(ErrorCodes.CONFIG_INVALID, problems);
  }
  const seen = new Set<string>();
  return parsed.data.plugins.map((entry, index) => {
    const name = entry.name ?? defaultPluginName(entry.path);
    if (!NAME.test(name)) {
      throw new TenementError(
        ErrorCodes.CONFIG_INVALID,
        `pluginOptions.wasm-plugins.plugins.${index}.name: '${name}' (from the file name) is not a name of lowercase letters, digits and '-': set name`,
      );
    }
    if (seen.has(name)) {
      throw new TenementError(ErrorCodes.CONFIG_INVALID, `pluginOptions.wasm-plugins.plugins.${index}.name: '${name}' is used twice`);
    }
    seen.add(name);
    return {
      name,
      path: path.resolve(configDir, entry.path),
      hooks: entry.hooks,
      capabilities: { log: entry.capabilities.log === true },
      failClosed: entry.failClosed,
      timeoutMs: entry.timeout,
      memoryPages: Math.floor(entry.memory / PAGE),
      engine: entry.engine,
    };
  });
}

/** `./geo-auth.wasm` -> `geo-auth`. */
export function defaultPluginName(file: string): string {
  return path.basename(file).replace(SOURCE, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
}
