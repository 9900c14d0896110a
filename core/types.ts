import type { IncomingHttpHeaders } from 'node:http';
import type { ServiceConfig, Tier } from './config/schema.ts';
import type { ErrorCode } from './errors.ts';
import type { Instance, InstanceView } from './instance.ts';

export type { Instance, InstanceView };

export type InstanceState =
  | 'created'
  | 'starting'
  | 'running'
  | 'restarting'
  | 'stopping'
  | 'stopped'
  | 'hibernated'
  | 'waking'
  | 'failed';

/** Lifecycle events, one per transition, named by what happened rather than by the state reached. */
export type InstanceEventType =
  | 'created'
  | 'starting'
  | 'waking'
  | 'spawned'
  | 'ready'
  | 'woken'
  | 'unhealthy'
  | 'exited'
  | 'restarting'
  | 'failed'
  | 'stopping'
  | 'hibernated'
  | 'stopped'
  | 'removed'
  | 'oom'
  /** Not a transition: storage use crossed `limits.storageWarn` of `limits.storage` (once per crossing). */
  | 'storage-warning';

export interface InstanceEvent {
  type: InstanceEventType;
  /** `service:id` */
  instance: string;
  service: string;
  id: string;
  from: InstanceState;
  to: InstanceState;
  reason?: string;
  at: number;
}

export type LogStream = 'stdout' | 'stderr';

export interface LogLine {
  at: number;
  stream: LogStream;
  line: string;
}

/**
 * The instance cgroup's owner (a limits plugin) lets the runtime change what only the runtime knows it needs,
 * so each cgroup file keeps one writer.
 */
export interface CgroupControl {
  /**
   * Raises the host's pids limit to at least `tasks`. For a runtime whose own threads count against it: gVisor
   * enforces `limits.pids` inside the sandbox, while the sentry's threads would hit the same number on the host.
   */
  raisePidsMax(tasks: number): Promise<void>;
}

/** Everything a runtime needs to start one instance; `beforeSpawn` taps may rewrite it. */
export interface SpawnSpec {
  service: string;
  id: string;
  tier: Tier;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  port: number;
  host: string;
  /** The instance's own directory, exported as DATA_DIR. */
  dataDir: string;
  config: ServiceConfig;
  /**
   * cgroup.procs files the instance's outermost process joins before it starts (set by a limits plugin).
   * A runtime honours it by entering them from outside its sandbox, where the host's cgroup files are
   * writable; the local-process runtimes do it in `spawnGroup`.
   */
  cgroupProcs?: readonly string[];
  /** What a runtime may adjust in the instance's cgroup for its own tier's needs (set with `cgroupProcs`). */
  cgroup?: CgroupControl;
  /**
   * Path of a network namespace file (/run/netns/NAME) the instance runs in (set by the network plugin). A
   * runtime enters it before its launcher starts; the local-process runtimes do it in `spawnGroup`.
   */
  netns?: string;
  /**
   * The veth addresses of a `network: 'private'` run (set by the network plugin with `netns`): the instance's own
   * (what it connects from) and its host side (the host's end of the pair, where services for it may listen).
   */
  privateNet?: { address: string; hostSide: string };
  /**
   * A file the runtime shows the instance as /etc/resolv.conf, read-only (set by the discovery plugin; the
   * namespace tier binds it; tiers that share the host's /etc ignore it and the instance has TENEMENT_DNS).
   */
  resolvConf?: string;
  /** Unix socket the app listens on instead of HOST:PORT (`listen: 'socket'`), exported as SOCKET_PATH. */
  socketPath?: string;
  /**
   * The uid and gid the instance's processes run as, set by the kernel when Tenement is root: the instance's
   * own uid from `settings.tenantUids`, or the service's `user`. null when Tenement is not root (the tenant
   * runs as Tenement's own user); a runtime refuses a spec without it as root (specUser).
   */
  user?: { uid: number; gid: number } | null;
  /**
   * The namespace tier maps the tenant's uid to uid 0 of its user namespace instead of to itself (set by the
   * snapshots plugin for a suspending service: CRIU only checkpoints a user namespace whose uid 0 is mapped). The
   * host uid is the same and the app still has no capability (empty bounding set, no_new_privs).
   */
  rootInUserns?: boolean;
  /** Called for every complete line the instance writes. */
  onLog(stream: LogStream, line: string): void;
  /** Called once when the instance's main process ends, however it ends. */
  onExit(exit: ExitInfo): void;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface InstanceStats {
  pid: number | null;
  /** Resident memory in bytes. */
  memoryBytes: number | null;
  /** CPU time consumed (user + system) in seconds. */
  cpuSeconds: number | null;
}

/** An instance's listener: TCP at host:port, or the Unix socket at socketPath when set. */
export interface UpstreamAddress {
  host: string;
  port: number;
  socketPath?: string;
  /**
   * The socket pinned once the instance is ready (`/proc/self/fd/N`, set by the supervisor): connections go
   * there, so a tenant that later swaps its socket file for a link cannot redirect the proxy.
   */
  pinnedPath?: string;
}

/** What a runtime returns from `spawn`: enough for the kernel to reach, stop and inspect the instance. */
export interface RunningHandle {
  pid: number | null;
  /** Process group id, persisted so a later run can kill orphans after a crash. */
  pgid: number | null;
  /** Where the proxy reaches the instance: `socketPath` when set (a Unix socket), else host:port. */
  address: UpstreamAddress;
  /**
   * Signals the instance to stop and resolves once nothing of it is left. `hibernating`: the stop is a
   * hibernation (a wrapper may save the instance instead of ending it: plugins/snapshots).
   */
  stop(options: { graceMs: number; hibernating?: boolean }): Promise<ExitInfo>;
  /**
   * Set by a handle whose process listens on a port of its own rather than the spec's (a restored image,
   * plugins/snapshots): the supervisor gives the port it handed out back and follows `address.port`.
   */
  keepsOwnPort?: boolean;
  /**
   * When one-time preparation inside the spawn hook ended (epoch ms): the wasm tier's first compile of a module or
   * component, seconds long and cached by content hash afterwards. `startupTimeout` counts from then, so a first
   * start is not failed for compiling; without it, from the start of the spawn.
   */
  preparedAt?: number;
  stats(): Promise<InstanceStats>;
  /**
   * Whether the listener on `address` is the instance's own (false: another program holds the port).
   * Optional: a runtime that cannot tell leaves it out, or answers null.
   */
  ownsAddress?(): Promise<boolean | null>;
  /**
   * Set by a runtime whose instance lives in this process (the wasm tier): the proxy hands it each request
   * directly instead of connecting to `address`, saving a second HTTP parse and two loopback crossings.
   * `address` stays valid (the fallback, and direct access for tools). Optional: the others leave it out.
   */
  inProcess?: InProcessHandler;
}

/** One request for an in-process instance, as the proxy would have forwarded it. */
export interface InProcessRequest {
  method: string;
  /** Path and query as the client sent them (`/a?b=1`). */
  target: string;
  /**
   * Name/value pairs, flat like `rawHeaders`, rewritten as for a proxied request: hop-by-hop headers removed,
   * X-Forwarded-For/-Proto/-Host added. Framing headers describe the client's message; `body` is whole.
   */
  headers: string[];
  body: Uint8Array;
  /** The client's address (the proxy's own when the request came through the loopback server). */
  remoteAddress: string;
}

/** The instance's whole answer; the proxy frames it (Content-Length, keep-alive) for the client. */
export interface InProcessResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

export interface InProcessHandler {
  /** Largest request body `serve` accepts: the proxy answers a bigger one 413 without calling it. */
  maxBody: number;
  /** Answers one request; rejects only when the instance cannot take it at all (stopped): a 502 then. */
  serve(request: InProcessRequest): Promise<InProcessResponse>;
  /**
   * What the instance published of its own metrics (the wasm tier: through the SDK's `metrics` host call), in
   * the Prometheus text format; read by the tenant-metrics plugin instead of scraping a path. Optional.
   */
  metrics?(): string;
}

/** What a runtime's probe says about its tier on this host. */
export interface TierProbe {
  available: boolean;
  /** Why not, and how to fix it (e.g. which package to install). */
  reason?: string;
  /** Worth knowing even when available: 'emulated (TCG): slow', the platform chosen... (`ten doctor` prints it). */
  note?: string;
}

export interface RequestInfo {
  /** Host name without port, lowercased. */
  hostname: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  remoteAddress: string;
  upgrade: boolean;
}

export type RouteTarget =
  | { kind: 'management' }
  | {
      kind: 'instances';
      mode: 'direct' | 'weighted';
      service: string;
      /** In preference order: the proxy tries the next one when a candidate cannot be reached. */
      candidates: InstanceView[];
    }
  /** An answer instead of a proxy: `status` is normally the code's own (statusOf, core/errors.ts). */
  | { kind: 'reject'; status: number; code: ErrorCode; message: string; retryAfter?: number }
  /** Send the client elsewhere (fleet redirect mode): 307/308 keep the method and body. Never for an upgrade. */
  | { kind: 'redirect'; status: 307 | 308; location: string; message: string };

/** What to check and how long to wait: the service's health settings, with the caller's deadline. */
export interface HealthProbe {
  path: string | null;
  timeoutMs: number;
}

export interface HealthResult {
  ok: boolean;
  detail?: string;
  latencyMs?: number;
}

/** One proxied request, reported on the `request` hook when it ends. */
export interface ProxiedRequest {
  instance: InstanceView;
  method: string;
  /** The status the client got; 0 when the exchange broke before a status was sent. */
  status: number;
  durationMs: number;
  /** Time spent waiting for the instance to wake or restart (0 when it was running). */
  wakeMs: number;
  /** The same object the `wake` and `upstreamHeaders` hooks saw for this request. */
  exchange: ProxyExchange;
}

/**
 * Requests an external edge (HAProxy, docs/edge.md) carried straight to an instance since its previous report,
 * read from the edge's counters: the `edgeTraffic` hook. The `request` hook sees only what the built-in proxy
 * carried (under HAProxy, the activator's share: wakes, and servers not yet pointed at their instance).
 */
export interface EdgeTraffic {
  instance: InstanceView;
  /** Which edge counted them ('haproxy'). */
  edge: string;
  /** Requests answered since the previous report. */
  requests: number;
  /** The same requests by status class: index 1 to 5 for 1xx to 5xx, 0 for any other (aborted before a status). */
  byClass: readonly number[];
  /** The edge's mean time per request, from its head to the end of the response, over its recent requests (HAProxy: the last 1024), ms; null when unknown. */
  meanMs: number | null;
}

/**
 * One proxied request from the moment it was read to its end: the same object at every hook that concerns it
 * (`wake`, `upstreamHeaders`, `request`), so a plugin can keep per-request state against it (a WeakMap).
 */
export interface ProxyExchange {
  readonly method: string;
  /** Path and query as the client sent them. */
  readonly target: string;
  /** The host name the client asked for (no port, lowercased). */
  readonly hostname: string;
  readonly remoteAddress: string;
  /** A WebSocket (or other) upgrade: a connection rather than a request, never reported on the `request` hook. */
  readonly upgrade: boolean;
  /** performance.now() when the request head had been read, before the `route` hook. */
  readonly receivedAt: number;
  /** performance.now() when it was routed to instances (the `request` hook's `durationMs` counts from here). */
  readonly startedAt: number;
  /** Time spent waiting for wakes so far. */
  readonly wakeMs: number;
  /** A request header as the client sent it (repeated ones joined with ", "), or undefined; `name` in lowercase. */
  header(name: string): string | undefined;
  /**
   * Reserved for the tracing plugin (plugins/otel), which keeps its state for the request here between its hooks
   * (wake, upstreamHeaders, request): a field, not a WeakMap entry per request (about 0.25 µs). Undefined until set.
   */
  tracing?: unknown;
}

/** The head about to go to an instance (the `upstreamHeaders` hook), once per instance the request is sent to. */
export interface UpstreamRequest {
  readonly exchange: ProxyExchange;
  readonly instance: InstanceView;
  /**
   * Flat name/value pairs about to be sent (hop-by-hop headers already removed, X-Forwarded-* added): taps may
   * add, change or remove pairs in place (a tracer swaps the client's `traceparent` for its own). A tap declared
   * add-only (TapOptions.adds) may get it empty instead, the head going as received plus what it pushes.
   */
  readonly headers: string[];
}

/** One health check as the kernel ran it (the `healthChecked` hook). */
export interface HealthCheckReport {
  /** The check kind ('http', 'tcp'...) and the path probed (null for tcp). */
  kind: string;
  path: string | null;
  result: HealthResult;
  /** performance.now() when it started, and how long it took. */
  startedAt: number;
  durationMs: number;
}

export interface WakeRequest {
  instance: InstanceView;
  /** Aborted when the waiting client goes away. */
  signal?: AbortSignal;
  /** The request waiting for the wake (absent when something other than a proxied request wakes it). */
  exchange?: ProxyExchange;
}

/** Identity for the management API (tapped by auth plugins). */
export interface AuthRequest {
  headers: IncomingHttpHeaders;
  remoteAddress: string;
  method: string;
  url: string;
}

export type Identity = { kind: 'admin'; name: string } | { kind: 'tenant'; tenant: string; name: string };
