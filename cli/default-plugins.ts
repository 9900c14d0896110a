import type { PluginEntry } from '../core/plugin.ts';
import authBearer from '../plugins/auth-bearer/index.ts';
import autoscale from '../plugins/autoscale/index.ts';
import cgroups from '../plugins/cgroups/index.ts';
import dashboard from '../plugins/dashboard/index.ts';
import discovery from '../plugins/discovery/index.ts';
import edgeHaproxy from '../plugins/edge-haproxy/index.ts';
import fleet from '../plugins/fleet/index.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import instancesApi from '../plugins/instances-api/index.ts';
import logs from '../plugins/logs/index.ts';
import metrics from '../plugins/metrics/index.ts';
import network from '../plugins/network/index.ts';
import otel from '../plugins/otel/index.ts';
import router from '../plugins/router/index.ts';
import snapshots from '../plugins/snapshots/index.ts';
import storage from '../plugins/storage/index.ts';
import tenantMetrics from '../plugins/tenant-metrics/index.ts';
import wasmPlugins from '../plugins/wasm-plugins/index.ts';
import webhooks from '../plugins/webhooks/index.ts';
import microvmRuntime from '../runtimes/microvm/index.ts';
import namespaceRuntime from '../runtimes/namespace/index.ts';
import processRuntime from '../runtimes/process/index.ts';
import sandboxRuntime from '../runtimes/sandbox/index.ts';
import wasmRuntime from '../runtimes/wasm/index.ts';

/**
 * Every default plugin, for tools that want them all (`ten doctor`, `ten plugin list`, tests, benches). `ten serve`
 * imports only those its config asks for, from the same list in the same order: cli/serve-plugins.ts.
 *
 * What `ten serve` loads before the config's own plugins: a runtime per tier (process, namespace, sandbox, microvm,
 * wasm), resource limits (cgroups), storage quotas (a no-op without `limits.storage`), private networking (a no-op
 * for `network: 'host'`), service discovery (`{service}.tenement.internal` for tenants: docs/discovery.md), routing, health checks and hibernation, then the management surface (bearer tokens, the
 * instances API, logs, metrics), sandboxed WASM plugins (a no-op when none are configured) and alert webhooks (a no-op
 * without `settings.alerts`), and tracing (`otel`: a no-op, the OpenTelemetry SDK not even loaded, without
 * `settings.otel` or OTEL_EXPORTER_OTLP_ENDPOINT), and the dashboard at `/` (`pluginOptions: { dashboard: false }` leaves it
 * out), and the HAProxy edge (a no-op unless `settings.edge` names HAProxy: docs/edge.md), and fleet mode (a no-op, nats not even connected,
 * without `settings.fleet` or `ten serve --fleet`: docs/fleet.md), and autoscaling (a no-op for services without `scale`:
 * docs/autoscale.md).
 */
export const defaultPlugins: PluginEntry[] = [processRuntime, namespaceRuntime, sandboxRuntime, microvmRuntime, wasmRuntime, cgroups, storage, network, discovery, router, health, hibernate, snapshots, authBearer, instancesApi, logs, metrics, tenantMetrics, wasmPlugins, webhooks, otel, dashboard, edgeHaproxy, fleet, autoscale];
