/** `ten deploy` and `ten route`: start a new version beside the old one, then move the traffic. */
import type { Command } from 'commander';
import type { InstanceView } from '../api-types.ts';
import type { ClientFlags } from '../client.ts';
import { color, out, printJson, stateColor, withProgress } from '../output.ts';
import { checkLabel, clientOptions, connect, duration, examples, integer, parseInstance } from './common.ts';

interface DeployFlags extends ClientFlags {
  weight?: number;
  timeout?: number;
}

interface RouteFlags extends ClientFlags {
  from: string;
  to: string;
}

/** Without --timeout the server waits the service's startupTimeout; the client gives it this long to answer. */
const DEPLOY_ANSWER_MS = 10 * 60_000;
/** Beyond the deploy's own timeout: time for the server to remove a failed version and answer. */
const ANSWER_GRACE_MS = 30_000;

export function registerDeploy(program: Command): void {
  const deploy = program
    .command('deploy <service:version>')
    .summary('Start a new version of a service beside the running one and wait until it is healthy')
    .description(
      'Start a new version of a service as instance {service}:{version} and wait until it is healthy. Its weight ' +
        'is 100 when nothing else of the service runs, else 0 (a canary): move traffic with `ten route` or `ten weight`. ' +
        'A version that fails to come up is removed again.',
    )
    .option('-w, --weight <n>', 'start with this weight (0 to 100)', integer(0, 100))
    .option('-t, --timeout <duration>', "how long it may take to become healthy (default: the service's startupTimeout)", duration)
    .action(async (target: string, flags: DeployFlags) => {
      const ref = parseInstance(target, 'version');
      const client = await connect(flags);
      const body = { service: ref.service, version: ref.id, weight: flags.weight, timeout: flags.timeout };
      const view = await withProgress(
        `deploying ${ref.key}, waiting for it to be healthy`,
        client.request<InstanceView>('POST', '/api/deploy', {
          body,
          timeoutMs: flags.timeout === undefined ? DEPLOY_ANSWER_MS : flags.timeout + ANSWER_GRACE_MS,
        }),
      );
      if (flags.json) return printJson(view);
      out(`deployed ${color.bold(view.key ?? ref.key)}: ${stateColor(view.state ?? 'running')}, weight ${view.weight ?? flags.weight ?? '?'}`);
      if (view.weight === 0) {
        // Name the instance that has the traffic now, so the next command can be copied as is.
        const { instances } = await client.get<{ instances: InstanceView[] }>('/api/instances', { service: ref.service });
        const current = instances.find((other) => other.id !== ref.id && other.weight > 0)?.id ?? '<old>';
        out(color.dim(`no traffic yet; to move it all: ten route ${ref.service} --from ${current} --to ${ref.id}`));
      }
    });
  clientOptions(deploy, { json: true });
  examples(deploy, [
    ['ten deploy notes:v2', 'start notes:v2 as a canary (weight 0 beside a running v1)'],
    ['ten deploy notes:v2 --weight 10 --timeout 60s', 'give it a tenth of the traffic once healthy'],
    ['ten route notes --from v1 --to v2', 'then move all traffic'],
  ]);

  const route = program
    .command('route <service>')
    .description("Move all of a service's weighted traffic at once: --from gets weight 0, --to (which must be running) 100")
    .requiredOption('--from <id>', 'the instance losing its traffic (it keeps running)')
    .requiredOption('--to <id>', 'the instance taking the traffic')
    .action(async (service: string, flags: RouteFlags) => {
      checkLabel(service, 'service');
      checkLabel(flags.from, 'instance id');
      checkLabel(flags.to, 'instance id');
      const client = await connect(flags);
      const answer = await client.post<{ from?: InstanceView; to?: InstanceView }>('/api/route', { service, from: flags.from, to: flags.to });
      if (flags.json) return printJson(answer);
      out(`${service} traffic moved: ${service}:${flags.from} weight ${answer.from?.weight ?? 0} → ${color.bold(`${service}:${flags.to}`)} weight ${answer.to?.weight ?? 100}`);
    });
  clientOptions(route, { json: true });
  examples(route, [
    ['ten route notes --from v1 --to v2', 'all traffic of notes.{domain} to v2'],
    ['ten route notes --from v2 --to v1', 'roll back'],
    ['ten stop notes:v1', 'when v1 is no longer needed'],
  ]);
}
