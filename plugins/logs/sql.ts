import type { LogStream } from '../../core/types.ts';

/** What a query may filter on; every field is optional. Times are epoch milliseconds, inclusive. */
export interface LogFilter {
  service?: string;
  id?: string;
  stream?: LogStream;
  since?: number;
  until?: number;
  /** Free text: searched as one phrase of whole words (see `ftsPhrase`). */
  search?: string;
}

/**
 * User text as one FTS5 phrase: the whole input in double quotes, inner quotes doubled. Inside a phrase FTS5
 * has no operators, so `-`, `:`, `*`, `(`, `NEAR`, `AND` are plain text that the tokenizer splits on or
 * matches as words; nothing the user types can be FTS syntax. Control characters are dropped (a NUL would
 * end the string early).
 */
export function ftsPhrase(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return `"${clean.replace(/"/g, '""')}"`;
}

/**
 * The SQL for one filter shape. Only fixed fragments go into the text; values are bound, so the statement can
 * be prepared once per shape (at most 64 of them) and reused. Results come newest first (by capture order,
 * `seq`) with the caller's limit; the store reverses them.
 *
 * With a search the FTS index drives the loop (CROSS JOIN fixes the order): FTS5 walks its matches in
 * descending rowid order, each is joined to its row by primary key and filtered, and LIMIT stops the walk,
 * so a common word with `limit=100` reads about 100 matches, not all of them.
 */
export function buildQuery(filter: LogFilter): { key: string; sql: string; bind: Record<string, string | number> } {
  const search = filter.search !== undefined;
  const col = search ? 'l.' : '';
  const seq = search ? 'f.rowid' : 'seq';
  const where: string[] = [];
  const bind: Record<string, string | number> = {};
  let key = search ? 'S' : 'P';
  if (search) {
    where.push('log_fts MATCH @match');
    bind.match = ftsPhrase(filter.search!);
  }
  if (filter.id !== undefined) {
    where.push(`${col}instance = @id`);
    bind.id = filter.id;
    key += 'i';
  }
  if (filter.service !== undefined) {
    where.push(`${col}service = @service`);
    bind.service = filter.service;
    key += 's';
  }
  if (filter.stream !== undefined) {
    where.push(`${col}stream = @stream`);
    key += 'o';
  }
  if (filter.since !== undefined) {
    // @lo, the first seq at or after `since` (found through the `at` index), bounds the scan. Capture order and
    // time order agree unless the host clock stepped back while capturing; then lines next to the step can be
    // missed, never wrongly included (the `at` test still applies).
    where.push(`${seq} >= @lo`, `${col}at >= @since`);
    bind.since = filter.since;
    key += 'a';
  }
  if (filter.until !== undefined) {
    where.push(`${seq} <= @hi`, `${col}at <= @until`);
    bind.until = filter.until;
    key += 'u';
  }
  const condition = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  const sql = search
    ? `SELECT l.at, l.service, l.instance, l.stream, l.line FROM log_fts f CROSS JOIN log_lines l ON l.seq = f.rowid
       ${condition} ORDER BY f.rowid DESC LIMIT @limit`
    : `SELECT at, service, instance, stream, line FROM log_lines ${condition} ORDER BY seq DESC LIMIT @limit`;
  return { key, sql, bind };
}
