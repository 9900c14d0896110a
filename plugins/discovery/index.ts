import type net from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { egressServices } from '../../core/config/egress.ts';
import { definePlugin } from '../../sdk/index.ts';
import type { InstanceState, SpawnSpec } from '../../sdk/index.ts';
import { PrivateCallers, PRIVATE_PORTS, zoneView } from './callers.ts';
import { ResolvConfFiles } from './resolv-conf.ts';
import { DnsResponder, listenTcp, queryCounts, type QueryCounts } from './responder.ts';
import { discoveryRoute } from './route.ts';

/** States in which a run has ended: its listeners go (the next run gets its own, on its own host side). */
const ENDED: ReadonlySet<InstanceState> = new Set(['restarting', 'failed', 'stopped', 'hibernated']);
const LOOPBACK = '127.0.0.1';

const portField = z.number().int().min(0).max(65_535).default(0);
/** Ports of the loopback responder and HTTP listener for host-network tenants (default 0: any free port). */
const discoveryOptions = z.strictObject({ dnsPort: portField, httpPort: portField }).default({ dnsPort: 0, httpPort: 0 });
export type DiscoveryOptions = z.output<typeof discoveryOptions>;

function registerMetrics(registry: Registry, counts: QueryCounts, callers: () => number): void {
  new Counter({
    name: 'tenement_discovery_queries_total',
    help: 'DNS queries the discovery responders got, by answer: noerror, nxdomain (unknown or denied), refused (outside tenement.internal, or a caller the responder does not serve), formerr, notimp, dropped (malformed, over the rate).',
    labelNames: ['answer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [answer, count] of Object.entries(counts)) this.inc({ answer }, count);
    },
  });
  new Gauge({
    name: 'tenement_discovery_private_callers',
    help: 'Runs of private instances with discovery listeners on their host side (their egress names a service).',
    registers: [registry],
    collect() {
      this.set(callers());
    },
  });
}

/**
 * Service discovery (docs/discovery.md): tenants call services by name, `http://notes.tenement.internal/` or
 * `http://alice.notes.tenement.internal/`, through Tenement's own proxy. A private instance whose `egress` names
 * services gets a DNS responder and an HTTP listener on its host side (its resolver, in /etc/resolv.conf for the
 * namespace tier and TENEMENT_DNS for all); host-network instances get a loopback responder in TENEMENT_DNS.
 */
export default definePlugin<DiscoveryOptions>({
  name: 'discovery',
  version: '1.0.0',
  kernel: '^1',
  options: discoveryOptions,
  async setup(ctx) {
    const files = new ResolvConfFiles();
    const counts = queryCounts();
    const callers = new PrivateCallers(ctx, files, counts);
    registerMetrics(ctx.metrics, counts, () => callers.size);

    // Host-network tenants share the host's loopback: no caller to tell apart, and egress does not apply to them.
    const hostCaller = { who: 'a host-network tenant', from: () => true, allowed: () => true };
    const loopbackRoute = discoveryRoute(ctx, hostCaller);
    const http: net.Server | null = await listenTcp(LOOPBACK, ctx.config.httpPort, (socket) => ctx.proxy.accept(socket, loopbackRoute), {
      maxConnections: 4096,
      allowHalfOpen: true,
    }).catch((error: Error) => {
      ctx.log.warn({ err: error.message }, `service discovery cannot listen for HTTP on ${LOOPBACK}: ${error.message}`);
      return null;
    });
    const httpPort = http ? (http.address() as net.AddressInfo).port : 0;
    const dns = await DnsResponder.start({
      host: LOOPBACK,
      port: ctx.config.dnsPort,
      view: () => zoneView(ctx, hostCaller.allowed, LOOPBACK, httpPort),
      log: ctx.log,
      counts,
    });
    const hostDns = dns.listening.udp || dns.listening.tcp ? `${LOOPBACK}:${dns.port}` : null;
    ctx.log.debug({ dns: hostDns, http: httpPort }, 'service discovery for host-network tenants');

    // After the network plugin's tap (stage 0), which attached the run's namespace and set spec.privateNet.
    ctx.hooks.beforeSpawn.tap(
      async (spec: SpawnSpec) => {
        if (spec.config.network === 'host') {
          // A microvm's loopback is the guest's own, and a wasm function has no network: the host's loopback is not theirs.
          if (!hostDns || spec.tier === 'microvm' || spec.tier === 'wasm') return spec;
          return { ...spec, env: { ...spec.env, TENEMENT_DNS: hostDns } };
        }
        if (!spec.privateNet || egressServices(spec.config.egress).length === 0) return spec;
        const caller = await callers.attach(`${spec.service}:${spec.id}`, spec.service, spec.privateNet);
        return { ...spec, resolvConf: caller.resolvConf, env: { ...spec.env, TENEMENT_DNS: `${caller.hostSide}:${PRIVATE_PORTS.dns}` } };
      },
      { stage: 10 },
    );

    ctx.hooks.stateChange.tap((event) => {
      if (event.type !== 'removed' && !ENDED.has(event.to)) return;
      // A new run may have started already (its beforeSpawn replaced the listeners): leave those.
      const state = ctx.instances.getByKey(event.instance)?.state;
      if (event.type !== 'removed' && (state === 'starting' || state === 'waking' || state === 'running')) return;
      void callers.release(event.instance);
    });

    ctx.onClose(async () => {
      http?.close();
      await dns.close();
      await callers.close();
      files.close();
    });
  },
});
