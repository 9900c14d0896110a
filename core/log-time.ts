/**
 * A UTC timestamp as `Date.prototype.toISOString()` writes it, computed from the epoch milliseconds without a
 * `Date`. Node's V8 (11 and 13) has toISOString (and every other Date-to-string) look up the host's local time
 * zone and its display names in ICU's data the first time it runs, although an ISO string is UTC: that pages in
 * about 1 MB of the node binary's ICU data and code, for good (measured: 1,024 KB of RssFile for the first
 * `new Date().toISOString()` in a bare node, 192 KB for getUTC*()s, 0 for arithmetic on Date.now()). An idle
 * `ten serve` formatted a date only for its log lines and its context file's `updatedAt`.
 *
 * Valid for the years 0 to 9999 (four-digit years, as toISOString writes them there), which Date.now() is in.
 */
const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);
const DAY_MS = 86_400_000;

export function isoTime(ms: number = Date.now()): string {
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted), in 400-year eras from 0000-03-01.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const shiftedMonth = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * shiftedMonth + 2) / 5) + 1;
  const month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1000);
  const millis = rest - seconds * 1000;
  return `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)}T${pad2(hours)}:${pad2(minutes)}:${pad2(seconds)}.${String(millis).padStart(3, '0')}Z`;
}
