import { defineConfig } from '../../sdk/index.ts';

// The quickstart app behind a sandboxed auth plugin: `npm start`-style, with
//   node bin/ten.mjs serve --config examples/plugin-geo-auth/tenement.config.ts
//   curl -i http://alice.hello.localhost:8080/                      # 403 x-country header required
//   curl -i -H 'x-country: fr' http://alice.hello.localhost:8080/   # 200 from alice's copy
// The plugin is built from geo-auth.ts on the first start (a few seconds; cached after that).
export default defineConfig({
  settings: {
    domain: 'localhost',
    port: 8080,
    dataDir: '../../tenement-data/plugin-geo-auth',
  },
  services: {
    hello: {
      command: 'node ../quickstart/app.mjs',
      health: '/health',
      idleTimeout: '30s',
      autoCreate: true,
    },
  },
  instances: {
    hello: ['alice'],
  },
  pluginOptions: {
    'wasm-plugins': {
      plugins: [
        {
          path: './geo-auth.ts',
          hooks: ['auth'],
          // Its console output reaches the server log; it gets nothing else of the host.
          capabilities: { log: true },
          // A plugin that cannot decide (trap, timeout, bad answer) means 503, not an open door.
          failClosed: true,
          timeout: '50ms',
        },
      ],
    },
  },
});
