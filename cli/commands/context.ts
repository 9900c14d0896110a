/** `ten context list|use|remove`: the servers this user started, and which one `ten` reaches from any folder. */
import type { Command } from 'commander';
import { ErrorCodes } from '../../core/errors.ts';
import { CliError } from '../client.ts';
import { contextFilePath, readContexts, writeContexts } from '../context-file.ts';
import { color, out, printJson, table } from '../output.ts';
import { examples } from './common.ts';

export function registerContext(program: Command): void {
  const context = program
    .command('context')
    .description('The servers you started (recorded by ten serve) and the current one, which ten reaches from a folder without a config');

  const list = context
    .command('list')
    .alias('ls')
    .description('List the recorded servers; the current one is marked *')
    .option('--json', 'print the raw JSON')
    .action((flags: { json?: boolean }) => {
      const file = readContexts();
      if (flags.json) {
        printJson({ file: contextFilePath(), current: file.current, contexts: Object.fromEntries(file.contexts) });
        return;
      }
      if (file.contexts.size === 0) {
        out(`no contexts in ${contextFilePath()}: ten serve records each server it starts`);
        return;
      }
      const rows = [...file.contexts].map(([name, entry]) => [
        name === file.current ? '*' : '',
        name === file.current ? color.bold(name) : name,
        entry.socket ? `unix:${entry.socket}` : (entry.server ?? '-'),
        entry.config ?? '-',
        entry.updatedAt.slice(0, 19).replace('T', ' '),
      ]);
      out(table(['CURRENT', 'NAME', 'ENDPOINT', 'CONFIG', 'RECORDED (UTC)'], rows));
    });
  examples(list, [['ten context list']]);

  const use = context
    .command('use <name>')
    .description('Make <name> the current context')
    .action((name: string) => {
      const file = readContexts();
      if (!file.contexts.has(name)) {
        const known = [...file.contexts.keys()].join(', ') || 'none';
        throw new CliError(`no context named '${name}' in ${contextFilePath()} (known: ${known})`, ErrorCodes.CONTEXT_FILE);
      }
      file.current = name;
      writeContexts(file);
      out(`current context: ${color.bold(name)}`);
    });
  examples(use, [['ten context use notes', 'ten ps from any folder now reaches the notes server']]);

  const remove = context
    .command('remove <name>')
    .alias('rm')
    .description('Forget a recorded server (the server itself is untouched)')
    .action((name: string) => {
      const file = readContexts();
      if (!file.contexts.delete(name)) throw new CliError(`no context named '${name}' in ${contextFilePath()}`, ErrorCodes.CONTEXT_FILE);
      if (file.current === name) file.current = null;
      writeContexts(file);
      out(`removed context ${name}`);
    });
  examples(remove, [['ten context remove old-notes']]);
}
