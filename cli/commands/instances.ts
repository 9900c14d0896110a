/** One instance at a time: spawn, stop, restart, hibernate, health, weight. */
import { Argument, type Command } from 'commander';
import type { HealthView, InstanceView } from '../api-types.ts';
import type { ClientFlags } from '../client.ts';
import { color, healthColor, out, printJson, stateColor, withProgress } from '../output.ts';
import { clientOptions, connect, examples, integer, parseInstance } from './common.ts';

/** 'running on port 30001, pid 4242' — whatever the answer tells about where the instance is now. */
function whereNow(view: Partial<InstanceView> | null): string {
  if (!view || typeof view.state !== 'string') return '';
  const parts = [stateColor(view.state)];
  if (view.state === 'running') {
    if (view.port) parts.push(`port ${view.port}`);
    if (view.pid) parts.push(`pid ${view.pid}`);
  }
  return `: ${parts.join(', ')}`;
}

interface Action {
  name: string;
  description: string;
  /** Past tense for the confirmation line. */
  done: string;
  /** Progress label while waiting. */
  doing: string;
  method: 'POST' | 'DELETE';
  suffix: string;
  examples: Array<[string, string?]>;
}

const ACTIONS: Action[] = [
  {
    name: 'spawn',
    description: 'Create an instance (if needed) and start it; answers once it is running',
    done: 'spawned',
    doing: 'starting',
    method: 'POST',
    suffix: '',
    examples: [['ten spawn notes:alice', 'start alice\'s copy of notes'], ['ten spawn notes:bob --server http://10.0.0.5:8080']],
  },
  {
    name: 'stop',
    description: 'Stop an instance (drain, SIGTERM, SIGKILL) and remove it; its data directory stays unless keepData is false',
    done: 'stopped and removed',
    doing: 'stopping',
    method: 'DELETE',
    suffix: '',
    examples: [['ten stop notes:alice']],
  },
  {
    name: 'restart',
    description: 'Restart an instance (also the way out of the failed state)',
    done: 'restarted',
    doing: 'restarting',
    method: 'POST',
    suffix: '/restart',
    examples: [['ten restart notes:alice']],
  },
  {
    name: 'hibernate',
    description: 'Stop an instance now but keep it listed; its next request wakes it',
    done: 'hibernated',
    doing: 'hibernating',
    method: 'POST',
    suffix: '/hibernate',
    examples: [['ten hibernate notes:alice', 'scale alice to zero until her next request']],
  },
];

function registerAction(program: Command, action: Action): void {
  const command = program
    .command(`${action.name} <service:id>`)
    .description(action.description)
    .action(async (target: string, flags: ClientFlags) => {
      const ref = parseInstance(target);
      const client = await connect(flags);
      const answer = await withProgress(
        `${action.doing} ${ref.key}`,
        client.request<Partial<InstanceView> | null>(action.method, ref.path + action.suffix, action.method === 'POST' ? { body: {} } : {}),
      );
      if (flags.json) return printJson(answer);
      out(`${action.done} ${color.bold(ref.key)}${action.name === 'stop' ? '' : whereNow(answer)}`);
    });
  clientOptions(command, { json: true });
  examples(command, action.examples);
}

export function registerInstanceCommands(program: Command): void {
  for (const action of ACTIONS) registerAction(program, action);

  const health = program
    .command('health <service:id>')
    .description('Run the instance\'s health check now and print the result (exit 1 when it fails)')
    .action(async (target: string, flags: ClientFlags) => {
      const ref = parseInstance(target);
      const client = await connect(flags);
      const result = await client.get<HealthView>(`${ref.path}/health`);
      if (flags.json) printJson(result);
      else {
        const verdict = result.ok ? color.green('ok') : color.red('failing');
        const latency = typeof result.latencyMs === 'number' ? ` in ${Math.round(result.latencyMs)}ms` : '';
        const state = result.state ? ` (${stateColor(result.state)}, ${healthColor(result.health ?? 'unknown')})` : '';
        out(`${color.bold(ref.key)} ${verdict}${latency}${state}${result.detail ? `: ${result.detail}` : ''}`);
      }
      // A failing check is a failure for scripts (`ten health x || page-someone`), printed above as usual.
      if (!result.ok) process.exitCode = 1;
    });
  clientOptions(health, { json: true });
  examples(health, [['ten health notes:alice'], ['ten health notes:alice --json']]);

  const weight = program
    .command('weight')
    .description("Set an instance's share of {service}.{domain} traffic (0 to 100; 0 takes none)")
    .addArgument(new Argument('<service:id>'))
    .addArgument(new Argument('<weight>', 'from 0 to 100').argParser(integer(0, 100)))
    .action(async (target: string, value: number, flags: ClientFlags) => {
      const ref = parseInstance(target);
      const client = await connect(flags);
      const answer = await client.put<Partial<InstanceView> | null>(`${ref.path}/weight`, { weight: value });
      if (flags.json) return printJson(answer);
      out(`${color.bold(ref.key)} weight ${typeof answer?.weight === 'number' ? answer.weight : value}`);
    });
  clientOptions(weight, { json: true });
  examples(weight, [['ten weight notes:v2 10', 'send v2 a tenth of the shared traffic'], ['ten weight notes:v1 0', 'drain v1']]);
}
