/**
 * `ten`'s quick paths, which run without commander (its load is most of a quick command's start-up, bench/cli.ts):
 * the top-level overview (`ten --help`, `-h`), `ten --version` (`-V`), `ten ps` with only its plain flags, and `ten
 * serve` with only its plain options (read as commander reads them). Each prints byte for byte what the commander
 * path prints (test/e2e/cli-quick.test.ts compares them); anything else
 * (another spelling, an unknown flag, a command's --help) is left to commander in cli/main.ts.
 */
import { COMMANDS } from './command-table.ts';
import { versionLine } from './version.ts';

export const DESCRIPTION = 'Tenement: one server, many tenants. Runs one copy of your app per customer behind subdomain routing.';

/** What follows the command list in the overview (commander's `addHelpText('after', ...)` in main.ts too). */
export const OVERVIEW_AFTER = `
Examples:
  $ ten init                                                  # write ./tenement.config.ts for the app here
  $ ten serve                                                 # run it
  $ ten spawn notes:alice                                     # start alice's copy
  $ ten ps                                                    # what runs, with health and memory
  $ ten logs notes:alice -f                                   # follow her output
  $ ten deploy notes:v2 && ten route notes --from v1 --to v2
  $ ten doctor                                                # what this host supports

Client commands find the server and token by themselves next to a local config (its port, and
{dataDir}/admin.token), else from the current context (the server you last started: ten context list);
elsewhere pass --server <url> and --token <token> (or TENEMENT_SERVER, TENEMENT_TOKEN).
Run 'ten <command> --help' for a command's options and examples.`;

/** commander 14's Help.minWidthToWrap: narrower boxes are not wrapped. */
const MIN_WIDTH_TO_WRAP = 40;

/** commander 14's Help.boxWrap (no ANSI in our text, so width is length). */
function boxWrap(text: string, width: number): string {
  if (width < MIN_WIDTH_TO_WRAP) return text;
  const lines: string[] = [];
  for (const line of text.split(/\r\n|\n/)) {
    const chunks = line.match(/[\s]*[^\s]+/g);
    if (chunks === null) {
      lines.push('');
      continue;
    }
    let sum = [chunks[0]!];
    let sumWidth = chunks[0]!.length;
    for (const chunk of chunks.slice(1)) {
      if (sumWidth + chunk.length <= width) {
        sum.push(chunk);
        sumWidth += chunk.length;
        continue;
      }
      lines.push(sum.join(''));
      const next = chunk.trimStart();
      sum = [next];
      sumWidth = next.length;
    }
    lines.push(sum.join(''));
  }
  return lines.join('\n');
}

/** commander 14's Help.formatItem. */
function formatItem(term: string, termWidth: number, description: string, helpWidth: number): string {
  const remaining = helpWidth - termWidth - 4;
  const wrapped = remaining < MIN_WIDTH_TO_WRAP ? description : boxWrap(description, remaining).replace(/\n/g, `\n${' '.repeat(termWidth + 2)}`);
  return `  ${term.padEnd(termWidth)}  ${wrapped.replace(/\n/g, '\n  ')}`;
}

/** `ten --help` as commander prints it for a help width (the terminal's columns, else 80). */
export function overview(helpWidth: number): string {
  const options: Array<[string, string]> = [
    ['-V, --version', 'output the version number'],
    ['-h, --help', 'display help for command'],
  ];
  const commands: Array<[string, string]> = [...COMMANDS.values()].map((entry) => [entry.term, entry.description]);
  // commander lists `help [command]` last, as every program with subcommands gets it.
  commands.push(['help [command]', 'display help for command']);
  const termWidth = Math.max(...[...options, ...commands].map(([term]) => term.length));
  const section = (title: string, items: Array<[string, string]>): string[] => [title, ...items.map(([term, text]) => formatItem(term, termWidth, text, helpWidth)), ''];
  const help = ['Usage: ten [options] [command]', '', boxWrap(DESCRIPTION, helpWidth), '', ...section('Options:', options), ...section('Commands:', commands)];
  return `${help.join('\n')}${OVERVIEW_AFTER}\n`;
}

/**
 * Runs `args` on a quick path when it has one; false leaves it to commander. A quick command that fails throws
 * (reported by cli/main.ts like any command's failure).
 */
export async function runQuick(args: readonly string[]): Promise<boolean> {
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    process.stdout.write(overview((process.stdout.isTTY ? process.stdout.columns : undefined) ?? 80));
    return true;
  }
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(`${versionLine()}\n`);
    return true;
  }
  if (args[0] === 'ps') {
    const flags = parsePsFlags(args.slice(1));
    if (!flags) return false;
    await (await import('./commands/ps-run.ts')).runPs(flags);
    return true;
  }
  // `ten serve` too: commander's modules stayed in a server's heap for good (~0.25 MB, bench/README.md "## Footprint").
  if (args[0] === 'serve') {
    const options = parseServeFlags(args.slice(1));
    if (!options) return false;
    await (await import('./commands/serve.ts')).runServe(options);
    return true;
  }
  return false;
}

/** `ten ps`'s options that take a value, by every spelling commander accepts for them. */
const PS_VALUES = new Map<string, 'service' | 'state' | 'server' | 'token' | 'config'>([
  ['-s', 'service'], ['--service', 'service'], ['--state', 'state'], ['--server', 'server'], ['--token', 'token'], ['-c', 'config'], ['--config', 'config'],
]);

export interface QuickPsFlags {
  service?: string;
  state?: string;
  server?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

/**
 * `ten ps`'s flags as commander would read them, or null for anything this reader does not handle exactly
 * (help, an unknown flag, an argument, `--`, combined short flags, a missing value): commander then reads it.
 */
export function parsePsFlags(args: readonly string[]): QuickPsFlags | null {
  return readFlags<QuickPsFlags>(args, PS_VALUES, '--json');
}

/** `ten serve`'s options (cli/commands/serve.ts), by every spelling commander accepts for them. */
const SERVE_VALUES = new Map<string, keyof QuickServeFlags>([
  ['-c', 'config'], ['--config', 'config'], ['-p', 'port'], ['--port', 'port'], ['-d', 'domain'], ['--domain', 'domain'],
  ['--listen', 'listen'], ['--data-dir', 'dataDir'], ['--fleet', 'fleet'],
]);

export interface QuickServeFlags {
  config?: string;
  port?: string;
  domain?: string;
  listen?: string;
  dataDir?: string;
  fleet?: string;
}

/** `ten serve`'s options as commander would read them, or null for what this reader leaves to commander. */
export function parseServeFlags(args: readonly string[]): QuickServeFlags | null {
  return readFlags<QuickServeFlags>(args, SERVE_VALUES, null);
}

function readFlags<T extends object>(args: readonly string[], values: ReadonlyMap<string, keyof T>, json: string | null): T | null {
  const flags = {} as Record<keyof T, string | boolean>;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === json) {
      (flags as Record<string, boolean>).json = true;
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const key = values.get(eq === -1 ? arg : arg.slice(0, eq));
    if (key === undefined) return null;
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = args[i + 1];
      // commander takes the next word whatever it is; a flag-looking one is left to it (rare, and its errors).
      if (next === undefined || next.startsWith('-')) return null;
      value = next;
      i++;
    }
    flags[key] = value;
  }
  return flags as T;
}
