import { DNS_LABEL } from '../../core/config/schema.ts';
import { ErrorCodes, statusOf, type ErrorCode } from '../../core/errors.ts';

export type ParsedHost =
  | { service: string; id: string | null }
  | { status: number; code: ErrorCode; message: string };

/** `{id}.{service}.{domain}` or `{service}.{domain}`; anything deeper or not a DNS label is a 400. */
export function parseTenantHost(hostname: string, domain: string): ParsedHost {
  if (!hostname.endsWith(`.${domain}`)) {
    return { status: statusOf(ErrorCodes.UNKNOWN_HOST), code: ErrorCodes.UNKNOWN_HOST, message: `host '${hostname}' is not under the domain '${domain}'` };
  }
  const labels = hostname.slice(0, -(domain.length + 1)).split('.');
  if (labels.length > 2) {
    return { status: statusOf(ErrorCodes.BAD_HOST), code: ErrorCodes.BAD_HOST, message: `host '${hostname}' has too many labels: expected {id}.{service}.${domain}` };
  }
  for (const label of labels) {
    if (!DNS_LABEL.test(label)) {
      return { status: statusOf(ErrorCodes.BAD_NAME), code: ErrorCodes.BAD_NAME, message: `'${label}' is not a valid service or instance name (a DNS label)` };
    }
  }
  return labels.length === 2 ? { service: labels[1]!, id: labels[0]! } : { service: labels[0]!, id: null };
}
