import type { MigrationStep } from '../../core/store.ts';

/**
 * The logs plugin's tables in `{dataDir}/tenement.db`, applied with `ctx.store.migrate(...)` (versioned under the plugin's name, 'logs').
 * Append only: a released step is never edited.
 *
 * - `log_lines`: one row per captured line. `seq` (the rowid) is capture order and the FTS rowid. Every index
 *   is on one column: SQLite orders index entries by rowid after the key, so `WHERE instance = ? ORDER BY seq
 *   DESC LIMIT n` (a tenant's newest lines, the most common query) walks the index backwards and stops after
 *   n rows instead of sorting all of that tenant's lines.
 * - `log_fts`: an FTS5 index over `line` with `log_lines` as its external content (the text is stored once).
 *   LogStore writes it next to every row it inserts or deletes, in the same transaction. Not with triggers:
 *   FTS5 flushes its pending terms at every statement boundary a trigger adds, which made inserts about
 *   6 times slower (measured with bench/logs-search.ts). `columnsize=0` drops the per-row size table FTS5 only
 *   needs for bm25 ranking, which we do not use.
 * - `log_usage`: lines and accounted bytes per instance, so retention knows who is over budget without a
 *   SUM over millions of rows. Written in the same transactions as the lines it counts.
 */
export const LOG_MIGRATIONS: readonly MigrationStep[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE log_lines (
        seq      INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        service  TEXT NOT NULL,
        instance TEXT NOT NULL,
        stream   INTEGER NOT NULL CHECK (stream IN (1, 2)),
        bytes    INTEGER NOT NULL,
        line     TEXT NOT NULL
      );
      CREATE INDEX log_lines_instance ON log_lines (instance);
      CREATE INDEX log_lines_service ON log_lines (service);
      CREATE INDEX log_lines_at ON log_lines (at);
      CREATE VIRTUAL TABLE log_fts USING fts5 (line, content = 'log_lines', content_rowid = 'seq', columnsize = 0);
      CREATE TABLE log_usage (
        service  TEXT NOT NULL,
        instance TEXT NOT NULL,
        lines    INTEGER NOT NULL,
        bytes    INTEGER NOT NULL,
        PRIMARY KEY (service, instance)
      ) WITHOUT ROWID;
    `,
  },
];
