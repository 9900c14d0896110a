/** `ten logs`: recent output of instances, one-shot or followed live over server-sent events. */
import { InvalidArgumentError, type Command } from 'commander';
import { parseDuration } from '../../core/config/units.ts';
import type { LogLineView } from '../api-types.ts';
import { CliError, type ClientFlags } from '../client.ts';
import { clockTime, color, out, printJson } from '../output.ts';
import { checkLabel, clientOptions, connect, examples, integer, parseInstance } from './common.ts';

interface LogsFlags extends ClientFlags {
  follow?: boolean;
  search?: string;
  since?: number;
  until?: number;
  stream?: string;
  limit?: number;
}

/** '10m' (that long ago), an ISO date/time, or epoch milliseconds → epoch milliseconds. */
export function parseTime(value: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const ago = parseDuration(value);
  if (ago !== undefined) return Date.now() - ago;
  const at = Date.parse(value);
  if (Number.isNaN(at)) {
    throw new InvalidArgumentError(`expected a duration ago like '10m', '2h', or an ISO time like '2025-01-31T12:00:00Z', got '${value}'`);
  }
  return at;
}

function parseStream(value: string): string {
  if (value !== 'stdout' && value !== 'stderr') throw new InvalidArgumentError(`expected stdout or stderr, got '${value}'`);
  return value;
}

// Each instance keeps one color, so interleaved output of several instances stays readable.
const PALETTE = [color.cyan, color.magenta, color.blue, color.yellow, color.green];
function instanceColor(key: string): (text: string) => string {
  let hash = 0;
  for (const char of key) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length]!;
}

/** `HH:MM:SS.mmm notes:alice OUT the line` (local time). */
export function formatLine(entry: LogLineView): string {
  const key = `${entry.service}:${entry.id}`;
  const stream = entry.stream === 'stderr' ? color.red('ERR') : color.dim('OUT');
  return `${color.dim(clockTime(entry.at))} ${instanceColor(key)(key)} ${stream} ${entry.line}`;
}

export function registerLogs(program: Command): void {
  const command = program
    .command('logs [target]')
    .description('Print instance output (stdout and stderr), oldest first; -f keeps following new lines until Ctrl-C')
    .option('-f, --follow', 'keep printing new lines as they are written (with --since, stored lines from then on first)')
    .option('--search <text>', 'only lines containing this text')
    .option('--since <when>', "only lines from this time on: '10m' ago, or an ISO time", parseTime)
    .option('--until <when>', "only lines before this time: '5m' ago, or an ISO time", parseTime)
    .option('--stream <stream>', 'only stdout or stderr', parseStream)
    .option('-n, --limit <n>', 'at most this many lines (the most recent ones)', integer(1, 100_000))
    .action(async (target: string | undefined, flags: LogsFlags) => {
      let filter: { service?: string; id?: string } = {};
      if (target !== undefined) {
        filter = target.includes(':') ? parseInstance(target) : { service: checkLabel(target, 'service') };
      }
      const query = {
        service: filter.service,
        id: filter.id,
        stream: flags.stream,
        search: flags.search,
        since: flags.since,
        until: flags.until,
        limit: flags.limit,
      };
      if (flags.follow && (flags.limit !== undefined || flags.until !== undefined)) {
        throw new CliError('--limit and --until do not apply to -f: use --since to replay stored lines first');
      }
      const client = await connect(flags);
      if (!flags.follow) {
        const answer = await client.get<{ lines: LogLineView[] }>('/api/logs', query);
        if (flags.json) return printJson(answer);
        for (const entry of answer.lines) out(formatLine(entry));
        return;
      }
      const aborter = new AbortController();
      // Ctrl-C is how following ends: a clean exit, not an error.
      const stop = (): void => aborter.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const { limit: _limit, until: _until, ...streamQuery } = query;
      await client.stream(
        '/api/logs/stream',
        streamQuery,
        (data) => {
          if (flags.json) return out(JSON.stringify(data));
          if (typeof data === 'object' && data !== null && 'line' in data) out(formatLine(data as LogLineView));
        },
        aborter.signal,
      );
      if (!aborter.signal.aborted) throw new CliError('the server closed the log stream');
    });
  clientOptions(command, { json: true });
  examples(command, [
    ['ten logs notes:alice', "alice's recent output"],
    ['ten logs notes --since 10m --stream stderr', 'errors of every notes instance in the last 10 minutes'],
    ['ten logs --search timeout --limit 50'],
    ['ten logs notes:alice -f', 'follow until Ctrl-C'],
    ['ten logs notes:alice --json'],
  ]);
}
