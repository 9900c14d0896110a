import path from 'node:path';
import { ErrorCodes, TenementError, errorMessage } from '../../core/errors.ts';
import { parsePluginOptions } from '../../core/plugin-options.ts';
import { engineNamed, memoryPagesFor, v8Engine, type EngineName } from '../../core/wasm/engine.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { MAX_WASMTIME_BODY_BYTES } from '../../core/wasm/wasmtime/component/values.ts';
import { poolOptionsSchema, type PoolOptionsInput } from '../../core/wasm/pool-options.ts';
import type { WasmPool } from '../../core/wasm/pool.ts';
// ctx.wasmPool() makes the pool with the constructor this import provides (core/wasm/shared.ts).
import '../../core/wasm/provide-pool.ts';
import type { SpawnSpec } from '../../core/types.ts';
import { definePlugin } from '../../sdk/index.ts';
import { startFunctionServer, type FunctionSettings } from './function-server.ts';
import { WasmMetrics } from './metrics.ts';
import { wasmServiceFields } from './schema.ts';

export type WasmRuntimeOptions = PoolOptionsInput;

/** Errors that mean "this engine cannot serve this code here" (the service then runs on V8), not "the code is bad". */
const FALLBACK_CODES = new Set<string>([ErrorCodes.WASMTIME_COMPONENTS_UNSUPPORTED, ErrorCodes.WASMTIME_UNAVAILABLE]);

const DEFAULTS: FunctionSettings = { timeoutMs: 10_000, fresh: false, maxQueue: 256, maxBody: 10_000_000 };

/**
 * The `wasm` tier: a service with `isolation: 'wasm'` and `module: './fn.wasm'` (a component of Tenement's HTTP
 * handler world, or a WASI preview 1 module speaking CGI) runs in the kernel's shared worker pool. Each
 * instance lives in this process (pid null): the kernel's proxy hands it requests directly (its handle's
 * `inProcess`), and it keeps a loopback HTTP server as its address, so routing, auth, metrics, logs and
 * hibernation work unchanged. Code is compiled once per content hash; each tenant's
 * DATA_DIR is its guest's only file system. docs/wasm.md.
 */
export default definePlugin<WasmRuntimeOptions | undefined>({
  name: 'runtime-wasm',
  version: '1.0.0',
  kernel: '^1',
  // A service's `wasm` options are this runtime's config (./schema.ts).
  serviceFields: wasmServiceFields,
  setup(ctx) {
    // Instances live in this process and the shared pool: no cgroup of their own; limits.memory is the guest's cap.
    // No process of its own either: its instances run as nobody's uid and reserve none.
    ctx.tiers.declare('wasm', { cgroups: 'none', tenantUid: false, probesPort: false });
    // The pool reads these options itself (whoever makes it first); they are checked here, at start-up.
    const poolOptions = parsePluginOptions(ctx.name, poolOptionsSchema, ctx.config);
    const defaultEngine: EngineName = poolOptions.engine ?? 'v8';
    const cache = new ModuleCache(path.join(ctx.settings.dataDir, 'wasm-cache'));
    let pool: WasmPool | null = null;
    const getPool = (): WasmPool => (pool ??= ctx.wasmPool());
    const wasmServices = () => ctx.services.entries().filter(([, s]) => s.isolation === 'wasm').map(([name]) => name);
    // Workers take a moment to start, and a component's first preparation (transpiling) takes a while: do both
    // at start-up, in the background, so a first request only waits for what is still left.
    if (wasmServices().length > 0) getPool();
    for (const name of wasmServices()) {
      const service = ctx.services.get(name)!;
      if (!service.module) continue;
      const file = path.resolve(service.cwd ?? process.cwd(), service.module);
      loadCode(name, file, memoryPagesFor(service.limits?.memory), service.wasm?.engine ?? defaultEngine, service.wasm?.fuel !== undefined).catch((error: unknown) => {
        ctx.log.warn({ service: name, module: file, err: errorMessage(error) }, 'cannot load the wasm module; its instances will fail to start');
      });
    }

    /** Reasons already logged, so a fallback is said once per service and reason, not at every spawn. */
    const fallbacks = new Set<string>();
    const fallBack = (service: string, engine: EngineName, reason: string, onLog?: SpawnSpec['onLog']): void => {
      // Also in the instance's own log, where its owner looks first.
      onLog?.('stderr', `[wasm] engine: ${engine} was asked for, running on V8: ${reason}`);
      const key = `${service}\0${reason}`;
      if (fallbacks.has(key) || fallbacks.size > 1000) return;
      fallbacks.add(key);
      ctx.log.warn({ service, engine, reason }, `the service asked for ${engine}: running it on V8 instead`);
    };
    /** The service's code on its engine; an engine that cannot serve it here falls back to V8 (logged). */
    async function loadCode(service: string, file: string, capPages: number, name: EngineName, fuel: boolean, onLog?: SpawnSpec['onLog']) {
      const engine = engineNamed(name);
      if (engine === v8Engine) return cache.load(file, capPages, engine.name);
      const options = { fuel };
      const available = engine.availability();
      if (!available.usable) {
        fallBack(service, engine.name, available.reason, onLog);
      } else {
        try {
          return await cache.load(file, capPages, engine.name, options);
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code === undefined || !FALLBACK_CODES.has(code)) throw error;
          fallBack(service, engine.name, `${code}: ${errorMessage(error)}`, onLog);
        }
      }
      return cache.load(file, capPages, v8Engine.name);
    }

    const metrics = new WasmMetrics(() => pool, wasmServices);
    ctx.hooks.metrics.tap((registry) => metrics.register(registry));

    ctx.hooks.probe.for('wasm').tap(async () =>
      typeof WebAssembly === 'object' ? { available: true } : { available: false, reason: 'this Node.js has no WebAssembly' },
    );

    // `limits.memory` of a wasm service is its guest memory cap, enforced here, not a cgroup: the instance has no
    // process of its own. Hide the process limits from cgroup plugins (they run later in this waterfall; other
    // limits, e.g. storage, stay); the spawn reads them from the service's config.
    const hideProcessLimits = (spec: SpawnSpec): SpawnSpec => {
      if (spec.tier !== 'wasm' || !spec.config.limits) return spec;
      const { memory: _cap, cpu, pids, ...rest } = spec.config.limits;
      if (cpu !== undefined || pids !== undefined) {
        ctx.log.warn({ service: spec.service }, 'limits.cpu and limits.pids do not apply to wasm services (they share the pool); use wasm.timeout');
      }
      return { ...spec, config: { ...spec.config, limits: rest } };
    };
    ctx.hooks.beforeSpawn.tap(hideProcessLimits, { stage: -100 });

    ctx.hooks.spawn.for('wasm').tap(async (spec) => {
      const service = ctx.services.get(spec.service) ?? spec.config;
      if (!service.module) {
        throw new TenementError(ErrorCodes.CONFIG_INVALID, `services.${spec.service}.module: expected the .wasm file to serve`);
      }
      const file = path.resolve(spec.cwd, service.module);
      const capPages = memoryPagesFor(service.limits?.memory);
      let code;
      try {
        code = await loadCode(spec.service, file, capPages, service.wasm?.engine ?? defaultEngine, service.wasm?.fuel !== undefined, spec.onLog);
      } catch (error) {
        throw new TenementError(ErrorCodes.SPAWN_FAILED, `cannot load ${spec.service}'s module ${file}: ${errorMessage(error)}`);
      }
      const wasm = service.wasm;
      // Only code compiled with metering counts fuel: a WASI module on wasmtime.
      const metered = code.kind === 'module' && 'fuel' in code.compiled && code.compiled.fuel;
      if (wasm?.fuel !== undefined && !metered) {
        spec.onLog('stderr', '[wasm] wasm.fuel: this code runs without fuel metering (only WASI modules on wasmtime have it); requests are bounded by wasm.timeout only');
      }
      const settings: FunctionSettings = {
        timeoutMs: wasm?.timeout ?? DEFAULTS.timeoutMs,
        fresh: wasm?.fresh ?? DEFAULTS.fresh,
        maxQueue: wasm?.maxQueue ?? DEFAULTS.maxQueue,
        // A component on wasmtime takes bodies up to that engine's limit (docs/wasm.md, Engines): 413 past it.
        maxBody: Math.min(wasm?.maxBody ?? DEFAULTS.maxBody, code.kind === 'component' && code.artifact.wasmtime ? MAX_WASMTIME_BODY_BYTES : Infinity),
        ...(metered && wasm?.fuel !== undefined && { fuel: wasm.fuel }),
      };
      // The first load of this code compiled it (seconds for a component): that does not count against startupTimeout.
      const preparedAt = Date.now();
      const handle = await startFunctionServer(spec, code, getPool(), settings, metrics);
      handle.preparedAt = preparedAt;
      return handle;
    });
  },
});
