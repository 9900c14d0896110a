import type { PluginEntry } from '../core/plugin.ts';
import authBearer from '../plugins/auth-bearer/index.ts';
import cgroups from '../plugins/cgroups/index.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import instancesApi from '../plugins/instances-api/index.ts';
import logs from '../plugins/logs/index.ts';
import metrics from '../plugins/metrics/index.ts';
import router from '../plugins/router/index.ts';
import namespaceRuntime from '../runtimes/namespace/index.ts';
import processRuntime from '../runtimes/process/index.ts';

/**
 * What `ten serve` loads before the config's own plugins: the process and namespace runtimes, resource limits
 * (cgroups; a no-op for services without `limits`), routing, health checks and
 * hibernation, then the management surface (bearer tokens, the instances API, logs, metrics).
 */
export const defaultPlugins: PluginEntry[] = [processRuntime, namespaceRuntime, cgroups, router, health, hibernate, authBearer, instancesApi, logs, metrics];
