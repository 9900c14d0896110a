/** `ten reload`: the server re-reads its config file (as on SIGHUP) and says what it applied. */
import type { Command } from 'commander';
import type { ClientFlags } from '../client.ts';
import type { ReloadAnswer } from '../reload.ts';
import { color, out, printJson } from '../output.ts';
import { clientOptions, connect, examples } from './common.ts';

export function registerReload(program: Command): void {
  const command = program
    .command('reload')
    .description('Reload the server\'s config file: services added, removed and changed are applied; an invalid file changes nothing (admin)')
    .action(async (flags: ClientFlags & { json?: boolean }) => {
      const client = await connect(flags);
      const answer = await client.post<ReloadAnswer>('/api/reload', {}, 120_000);
      if (flags.json) return printJson(answer);
      const list = (names: string[]): string => (names.length > 0 ? names.join(', ') : '-');
      out(`reloaded ${answer.file ?? 'the config'}`);
      out(`  added:    ${list(answer.added)}`);
      out(`  removed:  ${list(answer.removed)}`);
      out(`  changed:  ${list(answer.changed.map((c) => `${c.service} (${c.fields.join(', ')})`))}`);
      for (const change of answer.changed) {
        if (change.atNextStart.length > 0) out(color.dim(`  ${change.service}: ${change.atNextStart.join(', ')} apply at each instance's next start (ten restart ${change.service}:<id> to apply now)`));
      }
      if (answer.needsRestart.length > 0) out(color.yellow(`  kept until ten serve restarts: ${answer.needsRestart.join(', ')}`));
    });
  clientOptions(command, { json: true });
  examples(command, [['ten reload', 'after editing tenement.config.ts'], ['ten reload --json']]);
}
