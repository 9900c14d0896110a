/** `ten alerts`: alert deliveries to webhooks, newest first (admin tokens only). */
import { Option, type Command } from 'commander';
import type { ClientFlags } from '../client.ts';
import { color, dateTime, out, printJson, table } from '../output.ts';
import type { DeliveryView } from '../../plugins/webhooks/routes.ts';
import { clientOptions, connect, examples, integer } from './common.ts';

interface AlertsFlags extends ClientFlags {
  state?: string;
  webhook?: string;
  limit?: number;
  before?: number;
}

const STATES = ['pending', 'delivered', 'failed'];

function stateColor(state: string): string {
  return state === 'delivered' ? color.green(state) : state === 'failed' ? color.red(state) : color.yellow(state);
}

/** The last attempt in one cell: its status, else its error, else '-'. */
function last(view: DeliveryView): string {
  if (view.state === 'delivered') return String(view.lastStatus ?? '-');
  const text = view.lastError ?? (view.lastStatus === null ? '-' : String(view.lastStatus));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function registerAlerts(program: Command): void {
  const command = program
    .command('alerts')
    .description('List alert deliveries to webhooks, newest first: state, attempts, last status or error, next attempt (needs an admin token)')
    .addOption(new Option('--state <state>', 'only deliveries in this state').choices(STATES))
    .option('--webhook <name>', 'only deliveries to this webhook')
    .option('-n, --limit <n>', 'deliveries per page (1 to 1000, default 100)', integer(1, 1000))
    .option('--before <id>', 'the page after this delivery id (printed at the end of each page)', integer(1, Number.MAX_SAFE_INTEGER))
    .action(async (flags: AlertsFlags) => {
      const client = await connect(flags);
      const answer = await client.get<{ deliveries: DeliveryView[]; pending: number; next: number | null }>('/api/alerts', {
        state: flags.state,
        webhook: flags.webhook,
        limit: flags.limit,
        before: flags.before,
      });
      if (flags.json) return printJson(answer);
      if (answer.deliveries.length === 0) return out(color.dim('no alert deliveries'));
      const rows = answer.deliveries.map((d) => [
        String(d.id),
        dateTime(d.createdAt),
        d.kind === 'firing' ? color.red(d.kind) : color.green(d.kind),
        d.rule,
        d.instance ?? '-',
        d.webhook,
        stateColor(d.state),
        String(d.attempts),
        last(d),
        d.nextAttemptAt ? dateTime(d.nextAttemptAt) : '-',
      ]);
      out(table(['ID', 'CREATED', 'KIND', 'RULE', 'INSTANCE', 'WEBHOOK', 'STATE', 'ATTEMPTS', 'LAST', 'NEXT'], rows));
      out(color.dim(`${answer.pending} pending`));
      if (answer.next !== null) out(color.dim(`more: ten alerts --before ${answer.next}${flags.limit ? ` --limit ${flags.limit}` : ''}`));
    });
  clientOptions(command, { json: true });
  examples(command, [['ten alerts'], ['ten alerts --state failed'], ['ten alerts --webhook slack --limit 20'], ['ten alerts --json']]);
}
