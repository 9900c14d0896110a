/**
 * `ten serve` reloads its config file on SIGHUP (systemd's `ExecReload=/bin/kill -HUP $MAINPID`): the file is
 * loaded and validated again exactly as at start (same overrides, same plugins); an invalid one keeps the running
 * config and logs why, naming each bad field; a valid one is applied by `Kernel.reload` (core/config-reload.ts).
 * SIGHUPs that arrive during a reload are folded into one more reload after it.
 */
import type { ConfigDiff } from '../core/config-reload.ts';
import type { ResolvedConfig } from '../core/config/loader.ts';
import { errorFields } from '../core/errors.ts';
import type { Kernel } from '../core/kernel.ts';
import type { Logger } from '../core/logger.ts';
import type { PluginEntry } from '../core/plugin.ts';

export type ReloadOutcome = { ok: true; diff: ConfigDiff } | { ok: false; error: unknown };

/** Loads the config and applies it; never throws (a failure is logged and returned). */
export async function reloadConfig(kernel: Kernel, load: () => Promise<ResolvedConfig>, log: Logger): Promise<ReloadOutcome> {
  let next: ResolvedConfig;
  try {
    next = await load();
  } catch (error) {
    log.error({ ...errorFields(error), file: kernel.config.source.path }, 'config reload failed: the running config is kept');
    return { ok: false, error };
  }
  try {
    const diff = await kernel.reload(next);
    const changed = diff.changed.map((c) => `${c.service} (${c.fields.join(', ')})`);
    log.info({ added: diff.added, removed: diff.removed, changed, file: next.source.path }, 'config reloaded');
    for (const change of diff.changed) {
      if (change.atNextStart.length === 0) continue;
      log.info(
        { service: change.service, fields: change.atNextStart },
        `these fields apply at each instance's next start (running instances are not restarted: ten restart ${change.service}:<id> to apply now)`,
      );
    }
    if (diff.needsRestart.length > 0) {
      log.warn({ fields: diff.needsRestart }, 'these changes need a restart of ten serve: kept as they were until then');
    }
    return { ok: true, diff };
  } catch (error) {
    // Refused before anything changed (a service whose tier no runtime provides): the running config is kept.
    log.error({ ...errorFields(error), file: next.source.path }, 'config reload failed: the running config is kept');
    return { ok: false, error };
  }
}

/** Reloads on every SIGHUP until the returned function is called. */
export function reloadOnSighup(kernel: Kernel, load: () => Promise<ResolvedConfig>, log: Logger): () => void {
  let running: Promise<unknown> | null = null;
  let again = false;
  const run = (): void => {
    if (running) {
      again = true;
      return;
    }
    log.info({ signal: 'SIGHUP' }, 'reloading the config');
    running = reloadConfig(kernel, load, log).finally(() => {
      running = null;
      if (again) {
        again = false;
        run();
      }
    });
  };
  process.on('SIGHUP', run);
  return () => process.off('SIGHUP', run);
}

/** What `POST /api/reload` answers: what changed, and what waits for a restart. */
export interface ReloadAnswer {
  file: string | null;
  added: string[];
  removed: string[];
  changed: ConfigDiff['changed'];
  needsRestart: string[];
}

/**
 * `POST /api/reload` (admin): the same reload as SIGHUP, for `ten reload` and for hosts where signalling the
 * process is not at hand. A plugin only because routes are added during set-up; `reload` is bound by `ten serve`.
 * An invalid config answers with its coded error (TNM_ERR_CONFIG_INVALID naming each bad field), nothing changed.
 */
export function reloadRoutePlugin(reload: () => Promise<ReloadOutcome>, file: () => string | null): PluginEntry {
  return {
    name: 'config-reload',
    version: '1.0.0',
    kernel: '^1',
    setup(ctx) {
      ctx.api.route({
        method: 'POST',
        url: '/api/reload',
        summary: "Reload the server's config file: services added, removed and changed are applied",
        description: 'Settings, plugins and plugin options are kept until a restart (named in needsRestart). An invalid config changes nothing.',
        tags: ['server'],
        access: 'admin',
        handler: async ({ audit }): Promise<ReloadAnswer> => {
          audit.detail = file();
          const outcome = await reload();
          if (!outcome.ok) throw outcome.error;
          const { added, removed, changed, needsRestart } = outcome.diff;
          return { file: file(), added, removed, changed, needsRestart };
        },
      });
    },
  };
}
