/** `ten metrics <service:id>`: the instance's own metrics from its last scrape (services with `metrics`). */
import type { Command } from 'commander';
import type { ClientFlags } from '../client.ts';
import { color, dateTime, out, printJson, stateColor, table } from '../output.ts';
import type { InstanceMetricsAnswer } from '../../plugins/tenant-metrics/routes.ts';
import { clientOptions, connect, examples, parseInstance } from './common.ts';

/** `{a="1",b="2"}` as in the text format, or '' without labels. */
function labelText(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}=${JSON.stringify(value)}`);
  return pairs.length > 0 ? `{${pairs.join(',')}}` : '';
}

export function registerMetrics(program: Command): void {
  const command = program
    .command('metrics')
    .description("Print an instance's own metrics from its last scrape (services with metrics: { path }), and why the last scrape failed if it did")
    .argument('<service:id>', 'the instance, e.g. notes:alice')
    .action(async (target: string, flags: ClientFlags) => {
      const ref = parseInstance(target);
      const client = await connect(flags);
      const answer = await client.get<InstanceMetricsAnswer>(`${ref.path}/metrics`);
      if (flags.json) return printJson(answer);
      if (!answer.configured) return out(color.dim(`${answer.instance}: its service declares no metrics (metrics: { path: '/metrics' })`));
      const scraped = answer.scrapedAt ? `scraped ${dateTime(answer.scrapedAt)}` : 'not scraped yet';
      out(`${answer.instance} ${stateColor(answer.state)}, ${scraped}, ${answer.series} series`);
      if (answer.lastError) out(color.red(`last scrape failed: ${answer.lastError}`));
      const dropped = Object.entries(answer.dropped ?? {}).filter(([, n]) => n > 0);
      if (dropped.length > 0) out(color.yellow(`dropped so far: ${dropped.map(([reason, n]) => `${n} ${reason}`).join(', ')}`));
      if (answer.samples.length === 0) return;
      out(table(['NAME', 'LABELS', 'VALUE', 'TYPE'], answer.samples.map((s) => [s.name, labelText(s.labels), String(s.value), s.type])));
    });
  clientOptions(command, { json: true });
  examples(command, [['ten metrics notes:alice'], ['ten metrics notes:alice --json']]);
}
