/** `ten gc`: the storage clean-up now, rather than at the storage plugin's next round. */
import type { Command } from 'commander';
import type { GcReportView } from '../api-types.ts';
import type { ClientFlags } from '../client.ts';
import { color, dateTime, humanBytes, out, printJson, table } from '../output.ts';
import { clientOptions, connect, examples } from './common.ts';

export function registerGc(program: Command): void {
  const command = program
    .command('gc')
    .description('Delete the data of removed instances whose keepData retention has passed and release unused mounts (admin)')
    .action(async (flags: ClientFlags & { json?: boolean }) => {
      const client = await connect(flags);
      const report = await client.post<GcReportView>('/api/gc', {}, 120_000);
      if (flags.json) return printJson(report);
      if (report.deleted.length > 0) {
        out(table(['DELETED', 'FREED', 'WHY'], report.deleted.map((d) => [d.instance, humanBytes(d.freedBytes), d.reason])));
      }
      for (const key of report.unmounted) out(`unmounted ${key} (its instance no longer exists)`);
      for (const failure of report.errors) out(color.red(`failed ${failure.instance}: ${failure.error}`));
      for (const wait of report.pending) out(color.dim(`waiting: ${wait.instance}, deleted after ${dateTime(wait.deleteAt)}`));
      out(`freed ${humanBytes(report.freedBytes)} (${report.deleted.length} instance${report.deleted.length === 1 ? '' : 's'}) in ${report.durationMs}ms`);
      out(color.dim(`logs: ${report.logs}`));
      if (report.errors.length > 0) process.exitCode = 1;
    });
  clientOptions(command, { json: true });
  examples(command, [['ten gc'], ['ten gc --json', 'for scripts']]);
}
