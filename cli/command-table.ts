/**
 * Every top-level `ten` command by name: how `ten --help` lists it, and how to load the module that defines it.
 * cli/main.ts imports only the module of the command that runs; `ten --help` lists this table without loading any
 * command module. A new command is a row here, nothing in main.ts. test/e2e/cli-startup.test.ts checks that each row matches what its module registers.
 */
import type { Command } from 'commander';

/** Adds one or more commands (with their options, actions and help) to the program. */
export type Register = (program: Command) => void;

export interface CommandEntry {
  /** As `ten --help` lists it: the name, `[options]` when it has any, and its arguments. */
  readonly term: string;
  /** As `ten --help` lists it: the command's summary, else its description. */
  readonly description: string;
  readonly load: () => Promise<Register>;
}

const instances = async (): Promise<Register> => (await import('./commands/instances.ts')).registerInstanceCommands;
const deploy = async (): Promise<Register> => (await import('./commands/deploy.ts')).registerDeploy;

/** In the order `ten --help` lists them. */
export const COMMANDS: ReadonlyMap<string, CommandEntry> = new Map<string, CommandEntry>([
  ['serve', {
    term: 'serve [options]',
    description: 'Run the server: start the configured instances and route {id}.{service}.{domain} to them',
    load: async () => (await import('./commands/serve.ts')).registerServe,
  }],
  ['init', {
    term: 'init [options]',
    description: 'Write ./tenement.config.ts for the app in this directory (Node, Python, Go, Rust detected); never overwrites',
    load: async () => (await import('./commands/init.ts')).registerInit,
  }],
  ['config', {
    term: 'config [options]',
    description: 'Print the resolved config (defaults filled in, paths absolute) as JSON, or every error in it',
    load: async () => (await import('./commands/config.ts')).registerConfig,
  }],
  ['ps', {
    term: 'ps [options]',
    description: 'List instances: state, health, tier, port, uptime, idle time, restarts, OOM kills, weight, memory, storage, autoscale replicas',
    load: async () => (await import('./commands/ps.ts')).registerPs,
  }],
  ['spawn', {
    term: 'spawn [options] <service:id>',
    description: 'Create an instance (if needed) and start it; answers once it is running',
    load: instances,
  }],
  ['stop', {
    term: 'stop [options] <service:id>',
    description: 'Stop an instance (drain, SIGTERM, SIGKILL) and remove it; its data directory stays unless keepData is false',
    load: instances,
  }],
  ['restart', {
    term: 'restart [options] <service:id>',
    description: 'Restart an instance (also the way out of the failed state)',
    load: instances,
  }],
  ['hibernate', {
    term: 'hibernate [options] <service:id>',
    description: 'Stop an instance now but keep it listed; its next request wakes it',
    load: instances,
  }],
  ['health', {
    term: 'health [options] <service:id>',
    description: "Run the instance's health check now and print the result (exit 1 when it fails)",
    load: instances,
  }],
  ['weight', {
    term: 'weight [options] <service:id> <weight>',
    description: "Set an instance's share of {service}.{domain} traffic (0 to 100; 0 takes none)",
    load: instances,
  }],
  ['snapshot', {
    term: 'snapshot',
    description: 'Named snapshots of an instance: its process and its DATA_DIR, taken together and restored together',
    load: async () => (await import('./commands/snapshot.ts')).registerSnapshot,
  }],
  ['move', {
    term: 'move [options] <target>',
    description: 'Move an instance to another fleet node with its DATA_DIR (live with CRIU where it can) (admin)',
    load: async () => (await import('./commands/move.ts')).registerMove,
  }],
  ['logs', {
    term: 'logs [options] [target]',
    description: 'Print instance output (stdout and stderr), oldest first; -f keeps following new lines until Ctrl-C',
    load: async () => (await import('./commands/logs.ts')).registerLogs,
  }],
  ['metrics', {
    term: 'metrics [options] <service:id>',
    description: "Print an instance's own metrics from its last scrape (services with metrics: { path }), and why the last scrape failed if it did",
    load: async () => (await import('./commands/metrics.ts')).registerMetrics,
  }],
  ['deploy', {
    term: 'deploy [options] <service:version>',
    description: 'Start a new version of a service beside the running one and wait until it is healthy',
    load: deploy,
  }],
  ['route', {
    term: 'route [options] <service>',
    description: "Move all of a service's weighted traffic at once: --from gets weight 0, --to (which must be running) 100",
    load: deploy,
  }],
  ['build', {
    term: 'build [options] <source>',
    description: "Build a TypeScript/JavaScript handler into a WebAssembly component for isolation: 'wasm' (needs @bytecodealliance/jco)",
    load: async () => (await import('./commands/build.ts')).registerBuild,
  }],
  ['token', {
    term: 'token',
    description: 'Create, list and revoke API tokens (needs an admin token)',
    load: async () => (await import('./commands/token.ts')).registerToken,
  }],
  ['audit', {
    term: 'audit [options]',
    description: 'Show the audit log of mutating API calls, newest first (a tenant token sees its own instances only)',
    load: async () => (await import('./commands/audit.ts')).registerAudit,
  }],
  ['alerts', {
    term: 'alerts [options]',
    description: 'List alert deliveries to webhooks, newest first: state, attempts, last status or error, next attempt (needs an admin token)',
    load: async () => (await import('./commands/alerts.ts')).registerAlerts,
  }],
  ['doctor', {
    term: 'doctor [options]',
    description:
      'Check what this host supports: Node, cgroups, KVM, the tools tiers use, and each isolation tier for real (a tiny app started, requested and stopped in it). Exits 1 only when the process tier does not work',
    load: async () => (await import('./commands/doctor.ts')).registerDoctor,
  }],
  ['microvm', {
    term: 'microvm',
    description: 'The microvm isolation tier: prepare its guest',
    load: async () => (await import('./commands/microvm.ts')).registerMicrovm,
  }],
  ['plugin', {
    term: 'plugin',
    description: 'Add, list and remove plugins (sandboxed WebAssembly ones and trusted npm packages)',
    load: async () => (await import('./commands/plugin.ts')).registerPlugin,
  }],
  ['gc', {
    term: 'gc [options]',
    description: 'Delete the data of removed instances whose keepData retention has passed and release unused mounts (admin)',
    load: async () => (await import('./commands/gc.ts')).registerGc,
  }],
  ['context', {
    term: 'context',
    description: 'The servers you started (recorded by ten serve) and the current one, which ten reaches from a folder without a config',
    load: async () => (await import('./commands/context.ts')).registerContext,
  }],
  ['service', {
    term: 'service',
    description: 'Run ten serve as a system service (systemd)',
    load: async () => (await import('./commands/service.ts')).registerService,
  }],
  ['reload', {
    term: 'reload [options]',
    description: "Reload the server's config file: services added, removed and changed are applied; an invalid file changes nothing (admin)",
    load: async () => (await import('./commands/reload.ts')).registerReload,
  }],
  ['nats', {
    term: 'nats',
    description: 'Run the NATS servers a small fleet shares (ten serve --fleet connects to them)',
    load: async () => (await import('./commands/nats.ts')).registerNats,
  }],
  ['fleet', {
    term: 'fleet',
    description: 'Fleet mode: list the nodes, cordon, uncordon and drain them (docs/fleet.md)',
    load: async () => (await import('./commands/fleet.ts')).registerFleet,
  }],
]);
