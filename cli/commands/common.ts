/** Pieces every command shares: the client flags, `service:id` arguments, number/duration flags, examples. */
import { InvalidArgumentError, type Command } from 'commander';
import { parseDuration } from '../../core/config/units.ts';
import { CliError, Client, type ClientFlags } from '../client.ts';
import { checkLabel } from './labels.ts';

/** Adds --server, --token, --config (and --json for commands that read) to a command that talks to a server. */
export function clientOptions(command: Command, options: { json?: boolean } = {}): Command {
  command
    .option('--server <url>', 'server URL, always TCP (env TENEMENT_SERVER; default: the local server\'s api.sock in its data dir, else the local config\'s port on 127.0.0.1, else http://127.0.0.1:8080)')
    .option('--token <token>', 'API token (env TENEMENT_TOKEN; default: {dataDir}/admin.token of the local config)')
    .option('-c, --config <file>', 'local config to find the server and token from (env TENEMENT_CONFIG; default: found from the cwd up)');
  if (options.json) command.option('--json', 'print the raw JSON answer');
  return command;
}

export function connect(flags: ClientFlags): Promise<Client> {
  return Client.connect(flags);
}

/** The "Examples:" section of a command's --help; each entry is [command line, what it does]. */
export function examples(command: Command, lines: Array<[string, string?]>): Command {
  const width = Math.max(...lines.map(([line]) => line.length));
  const text = lines.map(([line, note]) => `  $ ${note ? line.padEnd(width) + '  # ' + note : line}`).join('\n');
  return command.addHelpText('after', `\nExamples:\n${text}`);
}

export { checkLabel } from './labels.ts';

export interface InstanceRef {
  service: string;
  id: string;
  /** `/api/instances/{service}/{id}` */
  path: string;
  key: string;
}

/** `service:id`, split at the first colon; both halves must be DNS labels. */
export function parseInstance(arg: string, idName = 'id'): InstanceRef {
  const colon = arg.indexOf(':');
  if (colon === -1) throw new CliError(`'${arg}' is not service:${idName} (e.g. notes:alice)`, 'TNM_ERR_BAD_NAME');
  const service = checkLabel(arg.slice(0, colon), 'service');
  const id = checkLabel(arg.slice(colon + 1), idName === 'id' ? 'instance id' : idName);
  return { service, id, key: `${service}:${id}`, path: `/api/instances/${service}/${id}` };
}

/** Commander argument parser for integers within a range (a bad value is a usage error, exit 1). */
export function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got '${value}'`);
    }
    return n;
  };
}

/** Commander argument parser for durations ('30s', '5m', '1d' or milliseconds) → milliseconds. */
export function duration(value: string): number {
  const ms = parseDuration(/^\d+$/.test(value) ? Number(value) : value);
  if (ms === undefined) throw new InvalidArgumentError(`expected a duration like '30s', '10m', '1h', '30d', got '${value}'`);
  return ms;
}
