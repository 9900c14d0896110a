/**
 * `ten fleet nodes|cordon|uncordon|drain` and `ten ps --fleet`: fleet mode (docs/fleet.md) over the fleet
 * plugin's `/api/fleet/*` routes. Any node of the fleet answers for all of them.
 */
import type { Command } from 'commander';
import type { InstanceView } from '../api-types.ts';
import { CliError, type Client, type ClientFlags } from '../client.ts';
import { color, healthColor, humanBytes, humanDuration, out, printJson, stateColor, table } from '../output.ts';
import { clientOptions, connect, duration, examples } from './common.ts';

/** A node as `GET /api/fleet/nodes` answers it. */
export interface FleetNodeView {
  id: string;
  advertise: string;
  labels: Record<string, string>;
  capacity: number | null;
  running: number;
  at: number;
  state: 'active' | 'cordoned' | 'draining';
  live: boolean;
  placements: number;
}

/** A placement as `GET /api/fleet/placements` answers it. */
export interface FleetPlacementView {
  service: string;
  id: string;
  node: string;
  at: number;
  generation: number;
  live: boolean;
}

/** Node ids as the plugin accepts them (checked here too, so a typo never reaches a URL unescaped). */
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkNode(node: string): string {
  if (!NODE_ID.test(node)) throw new CliError(`'${node}' is not a fleet node id (letters, digits, '.', '_', '-')`, 'TNM_ERR_BAD_NAME');
  return node;
}

function nodeState(node: FleetNodeView): string {
  if (!node.live) return color.red('down');
  return node.state === 'active' ? color.green('active') : color.yellow(node.state);
}

function labelsText(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return pairs.length > 0 ? pairs.join(',') : '-';
}

/** A server outside a fleet has no /api/fleet routes: said plainly instead of "no endpoint". */
async function fleetCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof CliError && error.status === 404 && /no endpoint/.test(error.message)) {
      throw new CliError('this server is not in a fleet (settings.fleet, or ten serve --fleet nats://...)', 'TNM_ERR_NOT_FOUND', 404);
    }
    throw error;
  }
}

async function nodes(client: Client): Promise<{ self: string; nodes: FleetNodeView[] }> {
  return fleetCall(() => client.get<{ self: string; nodes: FleetNodeView[] }>('/api/fleet/nodes'));
}

async function runNodes(flags: ClientFlags & { json?: boolean }): Promise<void> {
  const client = await connect(flags);
  const answer = await nodes(client);
  if (flags.json) return printJson(answer);
  const now = Date.now();
  const sorted = [...answer.nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (sorted.length === 0) return out(color.dim('no fleet nodes'));
  const rows = sorted.map((node) => [
    node.id === answer.self ? `${node.id} ${color.dim('*')}` : node.id,
    nodeState(node),
    node.advertise || '-',
    String(node.placements),
    String(node.running),
    node.capacity === null ? '-' : String(node.capacity),
    labelsText(node.labels),
    `${humanDuration((now - node.at) / 1000)} ago`,
  ]);
  out(table(['NODE', 'STATE', 'ADVERTISE', 'PLACED', 'RUNNING', 'CAPACITY', 'LABELS', 'HEARTBEAT'], rows));
  const live = sorted.filter((n) => n.live).length;
  out(color.dim(`${sorted.length} node${sorted.length === 1 ? '' : 's'} (${live} live); * is the node that answered`));
}

async function runAction(action: 'cordon' | 'uncordon' | 'drain', node: string, flags: ClientFlags & { json?: boolean; wait?: boolean; timeout?: number }): Promise<void> {
  checkNode(node);
  const client = await connect(flags);
  const answer = await fleetCall(() => client.post<{ node: string; state: string }>(`/api/fleet/nodes/${encodeURIComponent(node)}/${action}`));
  if (action === 'drain' && flags.wait) {
    // Done when no placement names the node any more (its instances were moved, each woken elsewhere on demand).
    const deadline = Date.now() + (flags.timeout ?? 120_000);
    for (;;) {
      const { placements } = await client.get<{ placements: FleetPlacementView[] }>('/api/fleet/placements');
      const left = placements.filter((p) => p.node === node).length;
      if (left === 0) break;
      if (Date.now() > deadline) throw new CliError(`${node} still holds ${left} instance(s) after ${Math.round((flags.timeout ?? 120_000) / 1000)} s`, 'TNM_ERR_TIMEOUT');
      if (!flags.json) process.stderr.write(`\r${node}: ${left} instance(s) left to move `);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    if (!flags.json) process.stderr.write('\n');
  }
  if (flags.json) return printJson(answer);
  const what = { cordon: 'cordoned: no new instance is placed on it', uncordon: 'uncordoned: it takes new instances again', drain: flags.wait ? 'drained: its instances were moved' : 'draining: its instances move to other nodes' }[action];
  out(`${answer.node} ${what}`);
}

interface FleetRow {
  node: string;
  key: string;
  view: InstanceView | null;
  live: boolean;
}

/** `GET /api/fleet/instances`: every placement with its instance as its owner reports it (the dashboard reads it too). */
interface FleetInstancesAnswer {
  self: string;
  instances: Array<{ node: string; nodeLive: boolean; key: string; service: string; id: string; instance: InstanceView | null }>;
  unreachable: string[];
}

/**
 * `ten ps --fleet`: every placement with its node, and each instance's state as its own node reports it. The node
 * asked gathers them (`GET /api/fleet/instances`), relaying the caller's identity to each owner, so a tenant token
 * sees its own instances fleet-wide with their owners' states.
 */
export async function runFleetPs(flags: ClientFlags & { json?: boolean; service?: string; state?: string }): Promise<void> {
  const client = await connect(flags);
  const answer = await fleetCall(() => client.get<FleetInstancesAnswer>('/api/fleet/instances', { service: flags.service }));
  const unreachable = answer.unreachable;
  let rows: FleetRow[] = answer.instances.map((r) => ({ node: r.node, key: r.key, view: r.instance, live: r.nodeLive }));
  if (flags.state) rows = rows.filter((r) => (r.view?.state ?? 'placed') === flags.state);
  rows.sort((a, b) => (a.node === b.node ? (a.key < b.key ? -1 : 1) : a.node < b.node ? -1 : 1));
  if (flags.json) {
    return printJson({ instances: rows.map((r) => ({ node: r.node, key: r.key, nodeLive: r.live, instance: r.view })), unreachable });
  }
  if (rows.length === 0) return out(color.dim('no instances placed in the fleet'));
  const body = rows.map((r) => {
    const v = r.view;
    const running = v?.state === 'running';
    return [
      r.live ? r.node : `${r.node} ${color.red('(down)')}`,
      r.key,
      v ? stateColor(v.state) : color.gray('placed'),
      v ? healthColor(v.health ?? 'unknown') : '-',
      v?.tier ?? '-',
      running ? humanDuration(v!.uptimeSeconds) : '-',
      v ? humanDuration(v.idleSeconds) : '-',
      v ? String(v.restarts ?? 0) : '-',
      humanBytes(v?.memoryBytes),
    ];
  });
  out(table(['NODE', 'INSTANCE', 'STATE', 'HEALTH', 'TIER', 'UPTIME', 'IDLE', 'RESTARTS', 'MEMORY'], body));
  const byNode = new Map<string, number>();
  for (const r of rows) byNode.set(r.node, (byNode.get(r.node) ?? 0) + 1);
  out(color.dim(`${rows.length} instance${rows.length === 1 ? '' : 's'} on ${byNode.size} node${byNode.size === 1 ? '' : 's'}`));
  if (unreachable.length > 0) out(color.yellow(`not answering: ${unreachable.sort().join(', ')} (their instances show as placed)`));
}

export function registerFleet(program: Command): void {
  const fleet = program.command('fleet').description('Fleet mode: list the nodes, cordon, uncordon and drain them (docs/fleet.md)');
  examples(fleet, [['ten fleet nodes'], ['ten fleet drain node-b --wait'], ['ten ps --fleet', 'every instance with its node']]);

  const list = fleet.command('nodes').description('List the fleet nodes: state, address, load, labels, last heartbeat (admin)').action(runNodes);
  clientOptions(list, { json: true });

  const actions: Array<['cordon' | 'uncordon' | 'drain', string]> = [
    ['cordon', 'Cordon a node: no new instance is placed on it; those there stay (admin)'],
    ['uncordon', 'Uncordon a node: it takes new instances again (admin)'],
    ['drain', 'Drain a node: its instances move to other nodes, each woken there on its next request (admin)'],
  ];
  for (const [action, description] of actions) {
    const command = fleet
      .command(`${action} <node>`)
      .description(description)
      .action((node: string, flags: ClientFlags & { json?: boolean; wait?: boolean; timeout?: number }) => runAction(action, node, flags));
    if (action === 'drain') {
      command.option('--wait', 'wait until no instance is placed on the node any more');
      command.option('--timeout <duration>', 'how long --wait waits', duration, 120_000);
    }
    clientOptions(command, { json: true });
  }
}
