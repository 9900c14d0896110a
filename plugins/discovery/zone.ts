import dnsPacket, { type Answer, type DecodedPacket, type Packet } from 'dns-packet';
import { DNS_LABEL } from '../../core/config/names.ts';

/** The zone service discovery answers: `{service}.tenement.internal`, `{id}.{service}.tenement.internal`. */
export const ZONE = 'tenement.internal';
/** Seconds a resolver may keep an answer: short, so a reload's new `egress` shows soon. */
export const TTL = 5;

/** Response codes used here (RFC 1035 §4.1.1). */
export const RCODE = { NOERROR: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A name of the zone: a service, or one instance of it; `srv` for `_http._tcp.` in front. */
export interface ZoneName {
  service: string;
  id: string | null;
  srv: boolean;
}

/**
 * What a query's name is: outside the zone (REFUSED, so glibc asks its next nameserver), a name of the zone
 * that cannot name anything (NXDOMAIN), or a service or instance name.
 */
export function parseZoneName(raw: string): ZoneName | 'outside' | 'invalid' {
  const name = raw.toLowerCase().replace(/\.$/, '');
  if (name !== ZONE && !name.endsWith(`.${ZONE}`)) return 'outside';
  if (name === ZONE) return 'invalid';
  let labels = name.slice(0, -(ZONE.length + 1)).split('.');
  const srv = labels[0] === '_http' && labels[1] === '_tcp';
  if (srv) labels = labels.slice(2);
  if (labels.length < 1 || labels.length > 2 || !labels.every((label) => DNS_LABEL.test(label))) return 'invalid';
  return labels.length === 2 ? { service: labels[1]!, id: labels[0]!, srv } : { service: labels[0]!, id: null, srv };
}

/** The host name an answer gives for a zone name: `[id.]service.tenement.internal`. */
export function zoneHost(name: ZoneName): string {
  return name.id === null ? `${name.service}.${ZONE}` : `${name.id}.${name.service}.${ZONE}`;
}

/** What the responder knows for one caller. */
export interface ZoneView {
  /** Whether the caller may resolve and call the service (its `egress` names it; any, for a host-network caller). */
  allowed(service: string): boolean;
  /** Whether `{id}.{service}` names an instance: an existing one, or one the service's `autoCreate` would make. */
  instanceKnown(service: string, id: string): boolean;
  /** Where calls by name go for this caller (its host side, or 127.0.0.1), and the HTTP port there. */
  address: string;
  port: number;
}

function reply(query: DecodedPacket, rcode: number, answers: Answer[] = [], additionals: Answer[] = []): Packet {
  const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  return {
    id: query.id ?? 0,
    type: 'response',
    flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | rcode,
    questions: query.questions ?? [],
    answers,
    additionals,
  };
}

/**
 * The answer to one decoded query, or null when it is not a query (a response sent to us: dropped). One question
 * per query; A and SRV records only (AAAA and the rest: no data), so every answer is a few dozen bytes.
 */
export function answer(query: DecodedPacket, view: ZoneView): Packet | null {
  if (query.type !== 'query') return null;
  if ((((query.flags ?? 0) >> 11) & 0xf) !== 0) return reply(query, RCODE.NOTIMP); // opcode: only QUERY
  const questions = query.questions ?? [];
  if (questions.length !== 1) return reply(query, RCODE.FORMERR);
  const question = questions[0]!;
  if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY') return reply(query, RCODE.REFUSED);
  const name = parseZoneName(question.name);
  if (name === 'outside') return reply(query, RCODE.REFUSED);
  if (name === 'invalid' || !view.allowed(name.service)) return reply(query, RCODE.NXDOMAIN);
  if (name.id !== null && !view.instanceKnown(name.service, name.id)) return reply(query, RCODE.NXDOMAIN);
  const host = zoneHost(name);
  const a: Answer = { type: 'A', name: host, ttl: TTL, class: 'IN', data: view.address };
  const any = (question.type as string) === 'ANY';
  if (name.srv) {
    if (question.type !== 'SRV' && !any) return reply(query, RCODE.NOERROR);
    const srv: Answer = { type: 'SRV', name: question.name, ttl: TTL, class: 'IN', data: { priority: 0, weight: 1, port: view.port, target: host } };
    return reply(query, RCODE.NOERROR, [srv], [a]);
  }
  if (question.type !== 'A' && !any) return reply(query, RCODE.NOERROR);
  return reply(query, RCODE.NOERROR, [{ ...a, name: question.name }]);
}
