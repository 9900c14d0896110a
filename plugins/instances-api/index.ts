import { definePlugin } from '../../sdk/index.ts';
import { actionRoutes } from './action-routes.ts';
import { deployRoute } from './deploy.ts';
import { instanceRoutes } from './instance-routes.ts';
import { routeSwapRoute } from './route-swap.ts';

/**
 * The management API for instances: list, inspect, spawn, remove, restart, hibernate, weigh and health-check
 * them, plus deploys of a new version beside the old one and an atomic traffic swap between the two.
 * Every route goes through ctx.api, so it is authenticated, validated, tenant-scoped and audited there.
 */
export default definePlugin({
  name: 'instances-api',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    instanceRoutes(ctx);
    actionRoutes(ctx);
    deployRoute(ctx);
    routeSwapRoute(ctx);
  },
});
