import type { PluginEntry } from '../core/plugin.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import router from '../plugins/router/index.ts';
import processRuntime from '../runtimes/process/index.ts';

/** What `ten serve` loads before the config's own plugins. */
export const defaultPlugins: PluginEntry[] = [processRuntime, router, health, hibernate];
