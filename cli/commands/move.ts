/**
 * `ten move svc:id --to NODE`: moves an instance to another fleet node with its DATA_DIR, live (CRIU) where it can,
 * else stopped, copied and started; requests during the pause are held and served (docs/fleet-operations.md).
 */
import type { Command } from 'commander';
import type { ClientFlags } from '../client.ts';
import { out, printJson } from '../output.ts';
import { clientOptions, connect, examples, parseInstance } from './common.ts';
// Type-only: the shape the fleet plugin answers with; no plugin code loads.
import type { MoveResult } from '../../plugins/fleet/move-result.ts';

async function runMove(target: string, flags: ClientFlags & { to: string; json?: boolean }): Promise<void> {
  const { service, id } = parseInstance(target);
  const client = await connect(flags);
  const answer = await client.post<MoveResult>(`/api/fleet/instances/${service}/${id}/move`, { to: flags.to }, 180_000);
  if (flags.json) return printJson(answer);
  const how = answer.mode === 'live' ? 'live (restored with its memory)' : answer.mode === 'cold' ? 'stopped, copied and started' : 'placement only';
  out(`${answer.service}:${answer.id} moved ${answer.from} -> ${answer.to}: ${how}, paused ${answer.pauseMs} ms, ${answer.bytes} bytes${answer.reason ? ` (${answer.reason})` : ''}`);
}

export function registerMove(program: Command): void {
  const command = program
    .command('move <target>')
    .description('Move an instance to another fleet node with its DATA_DIR (live with CRIU where it can) (admin)')
    .requiredOption('--to <node>', 'the node to move it to')
    .action(runMove);
  examples(command, [['ten move notes:alice --to node-b']]);
  clientOptions(command, { json: true });
}
