import { defineConfig } from '../../sdk/index.ts';
import unshareRuntime from './index.ts';

// `ten serve --config examples/runtime-unshare/tenement.config.ts` (as root): the notes app, each tenant in its
// own pid, mount, ipc and uts namespaces. The `unshare` tier and the `unshare` service field exist because the
// plugin is loaded here.
export default defineConfig({
  settings: { dataDir: './tenement-data', domain: 'localhost', port: 8080 },
  plugins: [unshareRuntime],
  services: {
    notes: {
      command: 'node ../notes/app.mjs',
      isolation: 'unshare',
      unshare: { ipc: true, uts: true },
      idleTimeout: '5m',
      health: '/health',
    },
  },
});
