import { definePlugin } from '../../sdk/index.ts';
import { ensureAdminToken } from './bootstrap.ts';
import { registerRoutes } from './routes.ts';
import { OWNER, TokenStore, identityOf } from './tokens.ts';

/** `Authorization: Bearer tnm_...`; the scheme is case-insensitive (RFC 9110), the token is not. */
const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Bearer tokens for the management API: `tnm_` secrets stored only as hashes, an admin token written to
 * `{dataDir}/admin.token` on first start, and /api/tokens to create, list and revoke tokens.
 * Failed attempts and lock-out are the API router's business; this plugin only answers "who is this?".
 */
export default definePlugin({
  name: OWNER,
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    // Every token made or revoked here is reported to `ctx.tokens`, where a fleet replicates it to the other
    // servers (docs/fleet.md); what they made or revoked comes back through `apply`.
    const tokens = new TokenStore(ctx.store, (record) => ctx.tokens.changed(record));
    ctx.tokens.serve({ list: () => tokens.records(), apply: (record) => tokens.applyRemote(record) });

    ctx.hooks.auth.tap(({ headers }) => {
      const match = BEARER.exec(headers.authorization ?? '');
      // Another scheme, or a bearer token that is not ours: leave it to other auth plugins (or the 401).
      if (!match) return undefined;
      const token = tokens.verify(match[1]!);
      return token ? identityOf(token) : undefined;
    });

    ensureAdminToken(tokens, ctx.paths.dataDir, ctx.log);
    registerRoutes(ctx.api, tokens);
  },
});
