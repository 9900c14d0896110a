import type { HookTiming } from '../../core/hooks.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { PluginRunner } from './runner.ts';

export interface KernelPluginView {
  name: string;
  kind: 'kernel';
  /** Hooks its taps are on (`route`, `spawn:process`...). */
  hooks: string[];
  /** Calls of its taps since start, by hook: the hook interceptors' timings. */
  calls: Record<string, HookTiming>;
}

export interface WasmPluginView {
  name: string;
  kind: 'wasm';
  path: string;
  hash: string;
  hooks: string[];
  capabilities: string[];
  failClosed: boolean;
  timeoutMs: number;
  memoryPages: number;
  /** `hook/outcome` -> calls since start. */
  calls: Record<string, number>;
  /** Its last log lines (only with the `log` capability). */
  recentLogs: string[];
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

/** Taps by plugin: every tap is registered through the hooks' interceptor, which makes its timing slot. */
function hooksByTap(timings: PluginContext['timings']): Map<string, string[]> {
  const byTap = new Map<string, string[]>();
  for (const key of timings.byTap.keys()) {
    const slash = key.lastIndexOf('/');
    const hook = key.slice(0, slash);
    const tap = key.slice(slash + 1);
    byTap.set(tap, [...(byTap.get(tap) ?? []), hook]);
  }
  return byTap;
}

/** GET /api/plugins (admin): what is loaded and which hooks each plugin taps. */
export function pluginsRoute(ctx: Pick<PluginContext, 'api' | 'timings' | 'plugins'>, runners: readonly PluginRunner[]): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/plugins',
    summary: 'Loaded plugins: kernel plugins with the hooks they tap, sandboxed (wasm) plugins with hooks, grants and call counts',
    tags: ['plugins'],
    access: 'admin',
    handler: () => {
      const taps = hooksByTap(ctx.timings);
      const kernelPlugins: KernelPluginView[] = ctx.plugins.map((name) => {
        const hooks = taps.get(name) ?? [];
        const calls: Record<string, HookTiming> = {};
        for (const hook of hooks) {
          const timing = ctx.timings.byTap.get(`${hook}/${name}`);
          if (timing) calls[hook] = { calls: timing.calls, errors: timing.errors, totalMs: round(timing.totalMs), maxMs: round(timing.maxMs) };
        }
        return { name, kind: 'kernel', hooks, calls };
      });
      const wasm: WasmPluginView[] = runners.map((runner) => ({
        name: runner.name,
        kind: 'wasm',
        path: runner.config.path,
        hash: runner.artifact.hash,
        hooks: runner.config.hooks,
        capabilities: Object.entries(runner.config.capabilities)
          .filter(([, on]) => on)
          .map(([name]) => name),
        failClosed: runner.config.failClosed,
        timeoutMs: runner.config.timeoutMs,
        memoryPages: runner.config.memoryPages,
        calls: Object.fromEntries(runner.counts),
        recentLogs: runner.recentLogs,
      }));
      return { plugins: kernelPlugins, wasm };
    },
  });
}
