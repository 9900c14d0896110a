/** DNS-label checks for names on the command line, apart from common.ts so a quick path need not load commander. */
import { DNS_LABEL } from '../../core/config/names.ts';
import { CliError } from '../client.ts';

const LABEL_RULE = "lowercase letters, digits and '-', 1 to 63 characters, not starting or ending with '-'";

export function checkLabel(value: string, what: string): string {
  if (!DNS_LABEL.test(value)) throw new CliError(`${what} '${value}' is not a DNS label (${LABEL_RULE})`, 'TNM_ERR_BAD_NAME');
  return value;
}
