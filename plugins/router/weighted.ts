/** The `weighted` order lives with the other load-balancing rules in core (the proxy workers draw with it too). */
export { weightedOrder } from '../../core/dataplane/balance.ts';
