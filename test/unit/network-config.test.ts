// Config of private networking: network, egress, listen and settings.network.range, with errors naming the field.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import { TenementError } from '../../core/errors.ts';
import { egressRuleset } from '../../plugins/network/egress.ts';

const source = { path: '/srv/app/tenement.config.ts', dir: '/srv/app' };

function configError(raw: unknown): string {
  try {
    resolveConfig(raw, source);
  } catch (error) {
    assert.ok(error instanceof TenementError);
    return error.message;
  }
  assert.fail('expected the config to be rejected');
}

const service = (fields: object) => ({ services: { web: { command: 'node app.js', ...fields } } });

test('defaults: host network, port listener, range 10.231.0.0/16, no NAT', () => {
  const config = resolveConfig(service({}), source);
  assert.equal(config.services.web!.network, 'host');
  assert.equal(config.services.web!.listen, 'port');
  assert.equal(config.services.web!.egress, undefined);
  assert.deepEqual(config.settings.network, { range: '10.231.0.0/16', nat: false });
});

test('egress takes addresses and CIDRs of both families, normalised to CIDRs', () => {
  const config = resolveConfig(service({ network: 'private', egress: ['10.0.0.5', '192.168.0.0/16', '2001:db8::/32'] }), source);
  assert.deepEqual(config.services.web!.egress, ['10.0.0.5/32', '192.168.0.0/16', '2001:db8::/32']);
});

test('bad egress entries, egress without private, none without a socket: errors name the field', () => {
  assert.match(configError(service({ network: 'private', egress: ['10.0.0.300'] })), /services\.web\.egress\.0.*IPv4 or IPv6 address/s);
  assert.match(configError(service({ network: 'private', egress: ['10.0.0.0/33'] })), /egress\.0.*prefix length from 0 to 32/s);
  assert.match(configError(service({ network: 'private', egress: ['example.com'] })), /egress\.0/);
  assert.match(configError(service({ egress: ['10.0.0.1'] })), /egress.*only to network: 'private'/s);
  assert.match(configError(service({ network: 'none' })), /services\.web\.listen.*listen: 'socket'/s);
  assert.match(configError(service({ network: 'bridge' })), /services\.web\.network/);
  assert.doesNotThrow(() => resolveConfig(service({ network: 'none', listen: 'socket' }), source));
});

test('settings.network.range must be an IPv4 network address of at least /29', () => {
  assert.match(configError({ settings: { network: { range: '10.231.0.0/30' } } }), /settings\.network\.range.*at least \/29/s);
  assert.match(configError({ settings: { network: { range: '10.231.4.0/16' } } }), /settings\.network\.range.*host bits set/s);
  assert.match(configError({ settings: { network: { range: 'fd00::/64' } } }), /settings\.network\.range.*IPv4/s);
  assert.match(configError({ settings: { network: { range: 'lots' } } }), /settings\.network\.range/);
  assert.equal(resolveConfig({ settings: { network: { range: '172.30.8.0/24' } } }, source).settings.network.range, '172.30.8.0/24');
});

test('egress rules: neighbours in the range refused before the allow-list, families split', () => {
  const rules = egressRuleset({ range: '10.231.0.0/16', hostSide: '10.231.0.1', egress: ['10.231.0.0/16', '1.2.3.4/32', '2001:db8::/32'] });
  const lines = rules.split('\n').map((line) => line.trim());
  const neighbours = lines.indexOf('ip daddr 10.231.0.0/16 ip daddr != 10.231.0.1 reject with icmpx type admin-prohibited');
  assert.ok(neighbours > 0, rules);
  assert.ok(neighbours < lines.indexOf('ip daddr { 10.231.0.0/16, 1.2.3.4/32 } accept'));
  assert.ok(lines.includes('ip6 daddr { 2001:db8::/32 } accept'));
  assert.ok(lines.includes('type filter hook output priority 0; policy drop;'));
  assert.ok(!egressRuleset({ range: '10.231.0.0/16', hostSide: '10.231.0.1', egress: [] }).includes('daddr {'), 'no empty sets');
});

test('egress names services (discovery): kept as names, checked against services, naming the entry', () => {
  const config = resolveConfig(
    { services: { web: { command: 'node app.js', network: 'private', egress: ['10.0.5.7', 'notes'] }, notes: { command: 'node app.js' } } },
    source,
  );
  assert.deepEqual(config.services.web!.egress, ['10.0.5.7/32', 'notes']);
  const unknown = configError({ services: { web: { command: 'node app.js', network: 'private', egress: ['10.0.5.7', 'billing'] } } });
  assert.match(unknown, /services\.web\.egress\.1.*unknown service 'billing'.*address, a CIDR, or the name of a service/s);
  // Own keys only: a name like __proto__ is not a DNS label, and `constructor` is not a service here.
  assert.match(configError(service({ network: 'private', egress: ['__proto__'] })), /egress\.0.*name of a service/s);
  assert.match(configError(service({ network: 'private', egress: ['constructor'] })), /egress\.0.*unknown service 'constructor'/s);
});

test('egress rules: a service name opens the host side on the discovery ports only, and is no address', () => {
  const rules = egressRuleset({ range: '10.231.0.0/16', hostSide: '10.231.0.1', egress: ['notes', '1.2.3.4/32'] });
  const lines = rules.split('\n').map((line) => line.trim());
  assert.ok(lines.includes('ip daddr { 1.2.3.4/32 } accept'), rules);
  assert.ok(lines.includes('ip daddr 10.231.0.1 udp dport 53 accept'), rules);
  assert.ok(lines.includes('ip daddr 10.231.0.1 tcp dport { 53, 80 } accept'), rules);
  assert.ok(!rules.includes('notes'));
  // The neighbour rule still comes first.
  assert.ok(lines.indexOf('ip daddr 10.231.0.0/16 ip daddr != 10.231.0.1 reject with icmpx type admin-prohibited') < lines.indexOf('ip daddr 10.231.0.1 udp dport 53 accept'));
  const plain = egressRuleset({ range: '10.231.0.0/16', hostSide: '10.231.0.1', egress: ['1.2.3.4/32'] });
  assert.ok(!plain.includes('dport'), 'no discovery ports without a service name');
});
