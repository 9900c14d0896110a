import type { PluginContext } from '../../core/plugin-context.ts';
import type { GcReport } from './gc.ts';

/** POST /api/gc: runs the clean-up now (admin only) and reports what it freed. */
export function gcRoute(api: PluginContext['api'], runGc: () => Promise<GcReport>): void {
  api.route({
    method: 'POST',
    url: '/api/gc',
    summary: 'Delete the data of removed instances whose keepData retention has passed, release unused mounts',
    description:
      'Also runs on its own every `gcInterval` (storage plugin options). Answers with what was deleted and freed, ' +
      'what is still waiting for its retention, and what failed. Log lines have their own retention (logs plugin).',
    tags: ['storage'],
    access: 'admin',
    handler: async ({ audit }) => {
      const report = await runGc();
      audit.detail = `freed ${report.freedBytes} bytes of ${report.deleted.length} instances`;
      return report;
    },
  });
}
