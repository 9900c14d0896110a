/** `ten token create|list|revoke`: API tokens (admin tokens only may manage them). */
import type { Command } from 'commander';
import type { TokenView } from '../api-types.ts';
import type { ClientFlags } from '../client.ts';
import { color, dateTime, out, printJson, table } from '../output.ts';
import { checkLabel, clientOptions, connect, duration, examples } from './common.ts';

interface CreateFlags extends ClientFlags {
  name: string;
  tenant?: string;
  expires?: number;
}

function status(token: TokenView, now: number): string {
  if (token.revokedAt) return color.red('revoked');
  if (token.expiresAt && new Date(token.expiresAt).getTime() <= now) return color.yellow('expired');
  return color.green('active');
}

export function registerToken(program: Command): void {
  const token = program
    .command('token')
    .description('Create, list and revoke API tokens (needs an admin token)');
  examples(token, [
    ['ten token create --name ci', 'an admin token'],
    ['ten token create --name alice-app --tenant alice --expires 30d', 'a token that only reaches *:alice instances'],
    ['ten token list'],
    ['ten token revoke tok_3f9a'],
  ]);

  const create = token
    .command('create')
    .description('Create a token and print its secret (shown only this once) on stdout; details go to stderr')
    .requiredOption('--name <name>', 'a name to recognise it by (shown in the audit log)')
    .option('--tenant <id>', 'make it a tenant token: it acts only on instances with this id, in every service')
    .option('--expires <duration>', "expire after this long: '12h', '30d' (default: never)", duration)
    .action(async (flags: CreateFlags) => {
      if (flags.tenant !== undefined) checkLabel(flags.tenant, 'tenant');
      const client = await connect(flags);
      const created = await client.post<TokenView>('/api/tokens', { name: flags.name, tenant: flags.tenant, expiresIn: flags.expires });
      if (flags.json) return printJson(created);
      const scope = created.tenant ? `tenant token for ${created.tenant}` : `${created.kind} token`;
      const expiry = created.expiresAt ? `, expires ${dateTime(created.expiresAt)}` : '';
      process.stderr.write(`created ${scope} '${created.name}' (id ${created.id}${expiry}); keep the secret now, it is not shown again:\n`);
      // Alone on stdout, so `TOKEN=$(ten token create --name ci)` captures exactly the secret.
      out(created.token ?? '');
    });
  clientOptions(create, { json: true });
  examples(create, [
    ['ten token create --name deploy-bot'],
    ['ten token create --name alice --tenant alice --expires 30d'],
    ['export TENEMENT_TOKEN=$(ten token create --name ci)'],
  ]);

  const list = token
    .command('list')
    .description('List tokens (never their secrets), revoked and expired ones included')
    .action(async (flags: ClientFlags) => {
      const client = await connect(flags);
      const answer = await client.get<{ tokens: TokenView[] }>('/api/tokens');
      if (flags.json) return printJson(answer);
      if (answer.tokens.length === 0) return out(color.dim('no tokens'));
      const now = Date.now();
      const rows = answer.tokens.map((t) => [
        t.id,
        t.name,
        t.kind,
        t.tenant ?? '-',
        dateTime(t.createdAt),
        dateTime(t.expiresAt ?? null),
        dateTime(t.lastUsedAt ?? null),
        status(t, now),
      ]);
      out(table(['ID', 'NAME', 'KIND', 'TENANT', 'CREATED', 'EXPIRES', 'LAST USED', 'STATUS'], rows));
      out(color.dim(`${answer.tokens.length} token${answer.tokens.length === 1 ? '' : 's'}`));
    });
  clientOptions(list, { json: true });
  examples(list, [['ten token list'], ['ten token list --json']]);

  const revoke = token
    .command('revoke <id>')
    .description('Revoke a token by its id (from `ten token list`); it stops working at once')
    .action(async (id: string, flags: ClientFlags) => {
      const client = await connect(flags);
      const answer = await client.delete<unknown>(`/api/tokens/${encodeURIComponent(id)}`);
      if (flags.json) return printJson(answer);
      out(`revoked token ${color.bold(id)}`);
    });
  clientOptions(revoke, { json: true });
  examples(revoke, [['ten token revoke tok_3f9a']]);
}
