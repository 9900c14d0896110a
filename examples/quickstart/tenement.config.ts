import { defineConfig } from '../../sdk/index.ts';

// `npm start` serves this: every tenant gets its own copy of app.mjs, created on its first request,
// hibernated after 30 seconds without traffic and woken by the next request.
export default defineConfig({
  settings: {
    domain: 'localhost',
    port: 8080,
    dataDir: '../../tenement-data',
  },
  services: {
    hello: {
      command: 'node app.mjs',
      health: '/health',
      idleTimeout: '30s',
      autoCreate: true,
    },
  },
  instances: {
    hello: ['alice'],
  },
});
