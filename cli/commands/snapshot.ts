/** `ten snapshot create|list|restore|delete`: named snapshots of an instance (docs/snapshots.md). */
import type { Command } from 'commander';
import { CliError, type ClientFlags } from '../client.ts';
import { color, dateTime, humanBytes, out, printJson, table, withProgress } from '../output.ts';
import { clientOptions, connect, examples, parseInstance } from './common.ts';

/** As the API answers it (plugins/snapshots/manager.ts SnapshotView). */
interface SnapshotView {
  name: string;
  service: string;
  id: string;
  createdAt: string;
  bytes: number;
  rawBytes: number;
  dumpMs: number;
  frozenMs: number;
}

interface RestoreView {
  restored: boolean;
  reason: string | null;
  restoreMs: number;
  state: string;
  snapshot: SnapshotView;
}

interface CreateFlags extends ClientFlags {
  name?: string;
}

/** The same rule as the server's, so a typo fails before it is sent. */
function checkName(name: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
    throw new CliError(`snapshot name '${name.slice(0, 80)}' is not allowed: a lowercase letter or digit, then up to 62 lowercase letters, digits or '-'`, 'TNM_ERR_BAD_NAME');
  }
  return name;
}

export function registerSnapshot(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description("Named snapshots of an instance: its process and its DATA_DIR, taken together and restored together");
  examples(snapshot, [
    ['ten snapshot create notes:alice --name before-upgrade'],
    ['ten snapshot list notes:alice'],
    ['ten snapshot restore notes:alice before-upgrade'],
    ['ten snapshot delete notes:alice before-upgrade'],
  ]);

  const create = snapshot
    .command('create <service:id>')
    .description('Snapshot a running instance (it runs on); the oldest snapshots go past the service\'s snapshots.keep / maxBytes')
    .option('--name <name>', 'the name (default: the time, YYYYMMDD-HHMMSS-mmm)')
    .action(async (target: string, flags: CreateFlags) => {
      const ref = parseInstance(target);
      const body = flags.name === undefined ? {} : { name: checkName(flags.name) };
      const client = await connect(flags);
      const view = await withProgress(`snapshotting ${ref.key}`, client.post<SnapshotView>(`${ref.path}/snapshots`, body, 300_000));
      if (flags.json) return printJson(view);
      out(`snapshot ${color.bold(view.name)} of ${ref.key}: ${humanBytes(view.bytes)} (${humanBytes(view.rawBytes)} uncompressed), frozen ${view.frozenMs}ms`);
    });
  clientOptions(create, { json: true });
  examples(create, [['ten snapshot create notes:alice'], ['ten snapshot create notes:alice --name before-upgrade']]);

  const list = snapshot
    .command('list [service:id]')
    .description("List snapshots, oldest first: one instance's, or every instance's the token reaches")
    .action(async (target: string | undefined, flags: ClientFlags) => {
      const client = await connect(flags);
      const path = target === undefined ? '/api/snapshots' : `${parseInstance(target).path}/snapshots`;
      const answer = await client.get<{ snapshots: SnapshotView[] }>(path);
      if (flags.json) return printJson(answer);
      if (answer.snapshots.length === 0) return out(color.dim('no snapshots'));
      const rows = answer.snapshots.map((s) => [`${s.service}:${s.id}`, s.name, dateTime(s.createdAt), humanBytes(s.bytes), humanBytes(s.rawBytes)]);
      out(table(['INSTANCE', 'NAME', 'CREATED', 'SIZE', 'UNCOMPRESSED'], rows));
    });
  clientOptions(list, { json: true });
  examples(list, [['ten snapshot list'], ['ten snapshot list notes:alice --json']]);

  const restore = snapshot
    .command('restore <service:id> <name>')
    .description('Stop the instance, put its DATA_DIR back and restore its process from the snapshot (a cold start on that DATA_DIR if the image fails)')
    .action(async (target: string, name: string, flags: ClientFlags) => {
      const ref = parseInstance(target);
      checkName(name);
      const client = await connect(flags);
      const view = await withProgress(`restoring ${ref.key} from ${name}`, client.post<RestoreView>(`${ref.path}/snapshots/${name}/restore`, {}, 300_000));
      if (flags.json) return printJson(view);
      if (view.restored) out(`restored ${color.bold(ref.key)} from ${name} in ${view.restoreMs}ms: ${view.state}`);
      else out(`${color.yellow('started cold')} ${color.bold(ref.key)} on the DATA_DIR of ${name} (the process image failed: ${view.reason ?? 'unknown'}): ${view.state}`);
    });
  clientOptions(restore, { json: true });
  examples(restore, [['ten snapshot restore notes:alice before-upgrade']]);

  const remove = snapshot
    .command('delete <service:id> <name>')
    .description('Delete a snapshot')
    .action(async (target: string, name: string, flags: ClientFlags) => {
      const ref = parseInstance(target);
      checkName(name);
      const client = await connect(flags);
      const view = await client.delete<SnapshotView>(`${ref.path}/snapshots/${name}`);
      if (flags.json) return printJson(view);
      out(`deleted snapshot ${color.bold(name)} of ${ref.key}`);
    });
  clientOptions(remove, { json: true });
  examples(remove, [['ten snapshot delete notes:alice before-upgrade']]);
}
