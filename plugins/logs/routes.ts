import { ErrorCodes, TenementError, errorMessage } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { LiveStreams } from './live.ts';
import { MAX_LIMIT, logsQuery, scopedFilter, streamQuery } from './query.ts';
import type { LogFilter } from './sql.ts';
import type { LogRecord, LogStore } from './store.ts';
import type { LogWriter } from './writer.ts';

export interface RouteDeps {
  store: LogStore;
  writer: LogWriter;
  live: LiveStreams;
  /** False once the server is stopping: no new streams. */
  isOpen(): boolean;
}

/** Runs a stored-lines query; FTS5 refusing a search (it should not, the text is quoted) is the client's 400. */
function runQuery(deps: RouteDeps, filter: LogFilter, limit: number): LogRecord[] {
  // Lines still waiting in memory are written first, so an answer includes everything captured before it.
  deps.writer.flush();
  try {
    return deps.store.query(filter, limit);
  } catch (error) {
    if (/fts5|MATCH/i.test(errorMessage(error))) {
      throw new TenementError(ErrorCodes.BAD_REQUEST, `query.search: cannot search for this text: ${errorMessage(error)}`);
    }
    throw error;
  }
}

export function registerRoutes(api: PluginContext['api'], deps: RouteDeps): void {
  api.route({
    method: 'GET',
    url: '/api/logs',
    summary: 'Stored output lines of instances, the newest `limit` that match, oldest first',
    description:
      'Filters: service, id, stream (stdout|stderr), since/until (epoch ms, ISO time, or a duration ago like 5m), ' +
      'search (whole words, matched as one phrase, case-insensitive), limit (1-10000, default 100). ' +
      'A tenant token sees its own instance id only.',
    tags: ['logs'],
    access: 'token',
    query: logsQuery,
    handler: ({ identity, query }) => {
      const filter = scopedFilter(identity, query);
      return { lines: runQuery(deps, filter, query.limit) };
    },
  });

  api.route({
    method: 'GET',
    url: '/api/logs/stream',
    summary: 'Live output lines as Server-Sent Events (data: {at, service, id, stream, line})',
    description:
      'Same filters as /api/logs without until and limit; search is a case-insensitive substring here. ' +
      'With since, stored lines from then on (the newest 10000) are sent first. A comment is sent when idle (every 15 s by default) ' +
      'to keep proxies from closing the stream. A tenant token sees its own instance id only.',
    tags: ['logs'],
    access: 'token',
    query: streamQuery,
    handler: ({ identity, query, reply }) => {
      const filter = scopedFilter(identity, query);
      if (!deps.isOpen()) {
        throw new TenementError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down', { retryAfter: 1 });
      }
      // Flush, query and subscribe happen in one synchronous run: no line can fall between backfill and live.
      const backfill = filter.since !== undefined ? runQuery(deps, filter, MAX_LIMIT) : [];
      reply.hijack();
      deps.live.open(reply.raw, filter, backfill);
    },
  });
}
