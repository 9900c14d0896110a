import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePluginOptions } from '../../core/plugin-options.ts';
import { definePlugin } from '../../sdk/index.ts';
import { EventHub } from './events.ts';
import { functionsRoute } from './functions.ts';
import { HistoryTable } from './history.ts';
import { dashboardOptions, type DashboardOptionsInput } from './options.ts';
import { startSampler } from './sampler.ts';
import { sessionAuth } from './session-auth.ts';
import { sessionRoutes } from './session-routes.ts';
import { SessionStore } from './sessions.ts';
import { staticRoutes } from './static-routes.ts';
import { streamRoutes } from './stream-routes.ts';

const DEFAULT_DIST = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dist');
/** Expired sessions are swept this often (a request finds them expired anyway). */
const SWEEP_EVERY_MS = 60_000;

/**
 * The dashboard at `/` on the bare domain: the built UI from memory, a session cookie in exchange for a token
 * (CSRF-checked on changes), a live stream of instance changes, and each instance's last hour for its charts.
 * It reads only what the management API shows; the API contract is docs/dashboard.md.
 */
export default definePlugin<DashboardOptionsInput | undefined>({
  name: 'dashboard',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    const options = parsePluginOptions(ctx.name, dashboardOptions, ctx.config);
    if (!options.enabled) return;

    const sessions = new SessionStore({ idleMs: options.sessionIdle, maxMs: options.sessionMax, maxSessions: options.maxSessions });
    const history = new HistoryTable();
    const hub = new EventHub(ctx, options.maxStreams);

    sessionAuth(ctx, sessions);
    sessionRoutes(ctx.api, sessions, ctx.settings.fleet !== undefined);
    streamRoutes(ctx, sessions, hub, history);
    functionsRoute(ctx);
    staticRoutes(ctx.api, options.distDir === undefined ? DEFAULT_DIST : path.resolve(ctx.paths.configDir, options.distDir), ctx.log);
    startSampler(ctx, history, hub);
    ctx.instances.watch((event) => {
      if (event.type === 'removed') history.delete(event.instance);
    });

    const sweep = setInterval(() => sessions.sweep(), SWEEP_EVERY_MS);
    sweep.unref();
    ctx.onClose(() => {
      clearInterval(sweep);
      hub.close();
      sessions.clear();
    });
  },
});
