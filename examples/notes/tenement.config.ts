import { defineConfig } from '../../sdk/index.ts';

export default defineConfig({
  settings: { domain: 'localhost', port: 8080, dataDir: './data' },
  services: {
    notes: {
      command: 'node app.mjs',
      health: '/health',
      idleTimeout: '5m',
      restart: 'always',
    },
  },
  instances: { notes: ['alice', 'bob'] },
});
