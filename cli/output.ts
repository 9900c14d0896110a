/**
 * Everything the CLI prints for humans: ANSI colors (only on a terminal, never with NO_COLOR), aligned tables,
 * human units and a progress line for waits. Machine-readable output (`--json`) bypasses all of it.
 */

/** Colors are for people looking at a terminal; pipes, files and NO_COLOR get plain text. */
export const useColor = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;

const paint = (open: number, close: number) => (text: string) => (useColor ? `\u001b[${open}m${text}\u001b[${close}m` : text);

export const color = {
  bold: paint(1, 22),
  dim: paint(2, 22),
  red: paint(31, 39),
  green: paint(32, 39),
  yellow: paint(33, 39),
  blue: paint(34, 39),
  magenta: paint(35, 39),
  cyan: paint(36, 39),
  gray: paint(90, 39),
};

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
const visibleLength = (text: string): number => text.replace(ANSI, '').length;

export function out(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** Pretty JSON on stdout: what every `--json` prints. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A left-aligned table with a bold header row; cells may already carry colors. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => visibleLength(row[i] ?? ''))));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visibleLength(cell))))
      .join('  ')
      .trimEnd();
  return [color.bold(line(headers)), ...rows.map(line)].join('\n');
}

/** '45s', '3m', '2h5m', '4d3h': precise enough to read at a glance. */
export function humanDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)}h${m ? `${m}m` : ''}`;
  }
  const h = Math.floor((s % 86_400) / 3600);
  return `${Math.floor(s / 86_400)}d${h ? `${h}h` : ''}`;
}

/** Decimal units like the config's sizes: 900B, 12.5KB, 48MB, 1.2GB. */
export function humanBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, '')}${units[unit]}`;
}

/** 'HH:MM:SS.mmm' in local time, the prefix of every log line. */
export function clockTime(at: number | string): string {
  const date = new Date(at);
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** Local date and time without the zone noise: '2025-11-28 22:14:03'. */
export function dateTime(at: number | string | null | undefined): string {
  if (at === null || at === undefined) return '-';
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return String(at);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function stateColor(state: string): string {
  switch (state) {
    case 'running':
      return color.green(state);
    case 'failed':
      return color.red(state);
    case 'hibernated':
    case 'stopped':
      return color.gray(state);
    default:
      return color.yellow(state);
  }
}

export function healthColor(health: string): string {
  if (health === 'healthy') return color.green(health);
  if (health === 'unhealthy') return color.red(health);
  return color.gray(health);
}

/**
 * Runs `work`; when it takes longer than a second and stderr is a terminal, shows `label` with a spinner and the
 * elapsed seconds on stderr until it settles (stdout stays clean for pipes).
 */
export async function withProgress<T>(label: string, work: Promise<T>): Promise<T> {
  if (process.stderr.isTTY !== true) return work;
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  const started = Date.now();
  let frame = 0;
  let shown = false;
  const draw = (): void => {
    shown = true;
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    process.stderr.write(`\r\u001b[2K${frames[frame++ % frames.length]} ${label} (${seconds}s)`);
  };
  let ticker: NodeJS.Timeout | undefined;
  const delay = setTimeout(() => {
    draw();
    ticker = setInterval(draw, 100);
  }, 1000);
  try {
    return await work;
  } finally {
    clearTimeout(delay);
    if (ticker) clearInterval(ticker);
    if (shown) process.stderr.write('\r\u001b[2K');
  }
}
