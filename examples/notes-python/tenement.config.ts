import { defineConfig } from '../../sdk/index.ts';

export default defineConfig({
  settings: { domain: 'localhost', port: 8080, dataDir: './data' },
  services: {
    notes: {
      command: 'python3 -u app.py',
      health: '/health',
      idleTimeout: '5m',
    },
  },
  instances: { notes: ['alice'] },
});
