// A fleet node in a child process of its own mount namespace (run under `unshare -m --propagation private`): its
// private folder is bind-mounted over the data folder path another node of the test uses, so both nodes have the
// same DATA_DIR paths on one host, as two hosts with the same settings.dataDir do (what a live move needs: a
// restored process keeps its environment and working folder). Config from $FLEET_NODE (JSON); prints
// `{"url": ...}` once listening; SIGTERM closes the kernel and exits.
import { execFileSync } from 'node:child_process';
import type { ServiceInput } from '../core/config/schema.ts';
import { createTestKernel } from '../core/test-kernel.ts';
import authBearer from '../plugins/auth-bearer/index.ts';
import fleet from '../plugins/fleet/index.ts';
import snapshots from '../plugins/snapshots/index.ts';
import { servePlugins } from './helpers.ts';

interface NodeConfig {
  id: string;
  servers: string[];
  services: Record<string, ServiceInput>;
  dataDir: string;
  privateDir: string;
  secret: string;
}

const config = JSON.parse(process.env.FLEET_NODE ?? '{}') as NodeConfig;
execFileSync('mount', ['--bind', config.privateDir, config.dataDir]);
const kernel = await createTestKernel({
  plugins: [...servePlugins, authBearer, fleet, snapshots],
  config: {
    settings: { dataDir: config.dataDir, fleet: { servers: config.servers, node: config.id, heartbeatMs: 200, expiryMs: 4000, secret: config.secret } },
    services: config.services,
  },
});
process.stdout.write(`${JSON.stringify({ url: kernel.url })}\n`);
let closing = false;
process.on('SIGTERM', () => {
  if (closing) return;
  closing = true;
  kernel.close().finally(() => process.exit(0));
});
