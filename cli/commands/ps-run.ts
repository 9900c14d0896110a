/**
 * What `ten ps` does, without commander: cli/commands/ps.ts registers it, and cli/quick.ts runs it directly when
 * the flags are plain (most `ten ps` calls), so `ten ps` pays for no argument parser.
 */
import type { InstanceView } from '../api-types.ts';
import { Client, type ClientFlags } from '../client.ts';
import { color, healthColor, humanBytes, humanDuration, out, printJson, stateColor, table } from '../output.ts';
import { checkLabel } from './labels.ts';

export interface PsFlags extends ClientFlags {
  service?: string;
  state?: string;
}

const HEADERS = ['INSTANCE', 'STATE', 'HEALTH', 'TIER', 'PORT', 'UPTIME', 'IDLE', 'RESTARTS', 'OOM', 'WEIGHT', 'MEMORY'];

/** OOM kills from the cgroups plugin (the `describe` hook's facts); '-' when no plugin counts them. */
function oomKills(view: InstanceView & { facts?: Record<string, unknown> }): string {
  const count = view.facts?.oomKills;
  return typeof count === 'number' ? String(count) : '-';
}

/**
 * DATA_DIR use against its limit from the storage plugin ('12.6MB/21.6MB'); '-' for instances without one. The
 * column is shown only when some instance has a limit.
 */
function storage(view: InstanceView & { facts?: Record<string, unknown> }): string {
  const fact = view.facts?.storage as { usedBytes?: unknown; limitBytes?: unknown } | null | undefined;
  if (typeof fact?.usedBytes !== 'number' || typeof fact.limitBytes !== 'number') return '-';
  const text = `${humanBytes(fact.usedBytes)}/${humanBytes(fact.limitBytes)}`;
  return fact.limitBytes > 0 && fact.usedBytes / fact.limitBytes >= 0.9 ? color.yellow(text) : text;
}

/** 'replica' (serving), 'replica:starting' or 'replica:draining' for the autoscaler's replicas (docs/autoscale.md); '-' otherwise. */
function replica(view: InstanceView & { facts?: Record<string, unknown> }): string {
  const fact = view.facts?.autoscale as { replica?: unknown; phase?: unknown } | undefined;
  if (fact?.replica !== true) return '-';
  return fact.phase === 'serving' || typeof fact.phase !== 'string' ? 'replica' : `replica:${fact.phase}`;
}

function row(view: InstanceView): string[] {
  const running = view.state === 'running';
  return [
    view.key,
    stateColor(view.state),
    healthColor(view.health ?? 'unknown'),
    view.tier ?? '-',
    running && view.port ? String(view.port) : '-',
    running ? humanDuration(view.uptimeSeconds) : '-',
    humanDuration(view.idleSeconds),
    String(view.restarts ?? 0),
    oomKills(view),
    String(view.weight ?? '-'),
    humanBytes(view.memoryBytes),
  ];
}

/** '3 instances (2 running, 1 hibernated)' */
function footer(views: InstanceView[]): string {
  const byState = new Map<string, number>();
  for (const view of views) byState.set(view.state, (byState.get(view.state) ?? 0) + 1);
  const detail = [...byState].map(([state, n]) => `${n} ${state}`).join(', ');
  return `${views.length} instance${views.length === 1 ? '' : 's'}${detail ? ` (${detail})` : ''}`;
}

export async function runPs(flags: PsFlags): Promise<void> {
  if (flags.service) checkLabel(flags.service, 'service');
  const client = await Client.connect(flags);
  const answer = await client.get<{ instances: InstanceView[] }>('/api/instances', { service: flags.service, state: flags.state });
  if (flags.json) return printJson(answer);
  const views = [...answer.instances].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (views.length === 0) {
    const filter = [flags.service && `service ${flags.service}`, flags.state && `state ${flags.state}`].filter(Boolean).join(', ');
    return out(color.dim(`no instances${filter ? ` (${filter})` : ''}`));
  }
  const withStorage = views.some((view) => storage(view) !== '-');
  // The autoscaler's replicas are marked only when there are some.
  const withReplicas = views.some((view) => replica(view) !== '-');
  const rows = views.map((view) => [...row(view), ...(withStorage ? [storage(view)] : []), ...(withReplicas ? [replica(view)] : [])]);
  out(table([...HEADERS, ...(withStorage ? ['STORAGE'] : []), ...(withReplicas ? ['SCALE'] : [])], rows));
  out(color.dim(footer(views)));
}
