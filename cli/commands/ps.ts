/** `ten ps`: every instance the server knows, as a table (cli/commands/ps-run.ts runs it; cli/quick.ts too). */
import type { Command } from 'commander';
import { clientOptions, examples } from './common.ts';
import { runPs, type PsFlags } from './ps-run.ts';

export function registerPs(program: Command): void {
  const command = program
    .command('ps')
    .description('List instances: state, health, tier, port, uptime, idle time, restarts, OOM kills, weight, memory, storage, autoscale replicas')
    .option('-s, --service <service>', 'only this service')
    .option('--state <state>', 'only instances in this state (running, hibernated, failed, ...)')
    .option('--fleet', 'every instance of the fleet with its node, as each node reports it (fleet mode)')
    .action(async (flags: PsFlags & { fleet?: boolean }) => (flags.fleet ? (await import('./fleet.ts')).runFleetPs(flags) : runPs(flags)));
  clientOptions(command, { json: true });
  examples(command, [
    ['ten ps'],
    ['ten ps --service notes --state running'],
    ['ten ps --json | jq ".instances[].key"', 'for scripts'],
    ['ten ps --fleet', 'fleet mode: every node\'s instances'],
  ]);
}
