/** `ten audit`: who changed what, newest first, a page at a time. */
import type { Command } from 'commander';
import type { AuditEntryView } from '../api-types.ts';
import type { ClientFlags } from '../client.ts';
import { color, dateTime, out, printJson, table } from '../output.ts';
import { clientOptions, connect, examples, integer } from './common.ts';

interface AuditFlags extends ClientFlags {
  limit?: number;
  before?: number;
}

function statusColor(status: number): string {
  return status >= 400 ? color.red(String(status)) : color.green(String(status));
}

export function registerAudit(program: Command): void {
  const command = program
    .command('audit')
    .description('Show the audit log of mutating API calls, newest first (a tenant token sees its own instances only)')
    .option('-n, --limit <n>', 'entries per page (1 to 1000, default 100)', integer(1, 1000))
    .option('--before <id>', 'the page after this entry id (printed at the end of each page)', integer(1, Number.MAX_SAFE_INTEGER))
    .action(async (flags: AuditFlags) => {
      const client = await connect(flags);
      const answer = await client.get<{ entries: AuditEntryView[]; next: number | null }>('/api/audit', {
        limit: flags.limit,
        before: flags.before,
      });
      if (flags.json) return printJson(answer);
      if (answer.entries.length === 0) return out(color.dim('no audit entries'));
      const rows = answer.entries.map((e) => [
        String(e.id),
        dateTime(e.at),
        e.tenant ? `${e.actor} (${e.tenant})` : e.actor,
        e.action,
        e.target ?? '-',
        statusColor(e.status),
        e.detail ?? '',
      ]);
      out(table(['ID', 'AT', 'ACTOR', 'ACTION', 'TARGET', 'STATUS', 'DETAIL'], rows));
      if (answer.next !== null) out(color.dim(`more: ten audit --before ${answer.next}${flags.limit ? ` --limit ${flags.limit}` : ''}`));
    });
  clientOptions(command, { json: true });
  examples(command, [['ten audit'], ['ten audit --limit 20'], ['ten audit --before 120', 'the next page'], ['ten audit --json']]);
}
