/**
 * HAProxy's runtime API over its stats socket: one connection per batch of commands (`;`-separated, the
 * non-interactive mode), the answer read to the end. Bounded: a wedged HAProxy fails a call after `timeoutMs`
 * and an answer over 8 MB is cut (`show stat` with thousands of servers stays far below).
 */
import net from 'node:net';

const MAX_ANSWER = 8 * 1024 * 1024;

export class RuntimeApi {
  constructor(
    private readonly socket: string,
    private readonly timeoutMs = 5_000,
  ) {}

  /** Runs the commands (none may hold ';' or a newline: names and addresses come from validated config). */
  run(commands: readonly string[]): Promise<string> {
    for (const command of commands) {
      if (/[;\n\r]/.test(command)) return Promise.reject(new Error(`refusing a runtime API command with ';' or a newline: ${JSON.stringify(command)}`));
    }
    return new Promise((resolve, reject) => {
      const conn = net.connect(this.socket);
      const chunks: Buffer[] = [];
      let size = 0;
      const timer = setTimeout(() => conn.destroy(new Error(`HAProxy's runtime API did not answer within ${this.timeoutMs}ms`)), this.timeoutMs);
      conn.on('connect', () => conn.end(`${commands.join(';')}\n`));
      conn.on('data', (chunk: Buffer) => {
        if (size >= MAX_ANSWER) return;
        size += chunk.length;
        chunks.push(chunk);
      });
      conn.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      conn.on('close', (hadError) => {
        clearTimeout(timer);
        if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
  }

  /** HAProxy's worker pid (`show info`): the same pid before and after a change means no reload happened. */
  async pid(): Promise<number> {
    return pidIn(await this.run(['show info']));
  }

  /** Per server of the backends named by `wanted`: sessions, responses by class and mean time (`show stat`, CSV). */
  async serverStats(wanted: (backend: string) => boolean): Promise<ServerStat[]> {
    return (await this.workerStats(wanted)).stats;
  }

  /**
   * The same, with the pid of the worker that answered, from one connection (`show info;show stat`). Just after a
   * reload the old worker still accepts on the admin socket for a moment, so two calls may reach two workers:
   * only one connection tells whose counters these are.
   */
  async workerStats(wanted: (backend: string) => boolean): Promise<{ pid: number; stats: ServerStat[] }> {
    const answer = await this.run(['show info', 'show stat']);
    const csvAt = answer.indexOf('# pxname');
    if (csvAt < 0) throw new Error(`no stats in HAProxy's answer: ${answer.slice(0, 200)}`);
    return { pid: pidIn(answer), stats: parseStats(answer.slice(csvAt), wanted) };
  }
}

/** The worker's pid in an answer holding `show info`'s. */
function pidIn(answer: string): number {
  const match = /^Pid: (\d+)$/m.exec(answer);
  if (!match) throw new Error(`no Pid in HAProxy's show info: ${answer.slice(0, 200)}`);
  return Number(match[1]);
}

function parseStats(csv: string, wanted: (backend: string) => boolean): ServerStat[] {
  const lines = csv.split('\n');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const col = (name: string): number => header.indexOf(name);
  const [px, sv, scur, stot, addr, weight, ttime, status] = [col('pxname'), col('svname'), col('scur'), col('stot'), col('addr'), col('weight'), col('ttime'), col('status')];
  // hrsp_other first: the index of each is its status class (0 other, 1 to 5 for 1xx to 5xx).
  const classes = ['hrsp_other', 'hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx'].map(col);
  const stats: ServerStat[] = [];
  for (const line of lines.slice(1)) {
    const fields = line.split(',');
    const backend = fields[px];
    const server = fields[sv];
    if (!backend || !server || server === 'FRONTEND' || server === 'BACKEND' || !wanted(backend)) continue;
    stats.push({
      backend,
      server,
      current: Number(fields[scur]) || 0,
      total: Number(fields[stot]) || 0,
      addr: addr >= 0 ? (fields[addr] ?? '') : '',
      weight: Number(fields[weight]) || 0,
      maint: status >= 0 && (fields[status] ?? '').startsWith('MAINT'),
      responses: classes.map((c) => (c >= 0 ? Number(fields[c]) || 0 : 0)),
      meanMs: ttime >= 0 && fields[ttime] !== '' && fields[ttime] !== undefined ? Number(fields[ttime]) || 0 : null,
    });
  }
  return stats;
}

export interface ServerStat {
  backend: string;
  server: string;
  current: number;
  total: number;
  addr: string;
  weight: number;
  /** In maintenance (its instance is not running: the backend's backup server, the activator, serves). */
  maint: boolean;
  /** Responses so far by status class: index 0 other (aborted), 1 to 5 for 1xx to 5xx. */
  responses: number[];
  /** Mean total time of its last 1024 requests (HAProxy's `ttime`), ms; null when the column is missing. */
  meanMs: number | null;
}

/** Fails on an answer HAProxy gives to a command it refused (the runtime API answers errors as text). */
export function checkAnswer(answer: string): void {
  const bad = answer.split('\n').find((line) => /^(No such|Unknown command|Invalid|Require|Permission denied|.*not found)/i.test(line.trim()));
  if (bad) throw new Error(`HAProxy refused a runtime API command: ${bad.trim()}`);
}
