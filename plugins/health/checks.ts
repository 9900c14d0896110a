import http from 'node:http';
import type { HealthProbe, HealthResult, UpstreamAddress } from '../../core/types.ts';
import { connectUpstream, unixPath } from '../../core/upstream-address.ts';

/** GET the health path on a fresh connection; any 2xx is healthy. */
export function httpCheck(address: UpstreamAddress, probe: HealthProbe): Promise<HealthResult> {
  const started = performance.now();
  const socketPath = unixPath(address);
  const target = socketPath ? { socketPath } : { host: address.host, port: address.port };
  return new Promise((resolve) => {
    const request = http.get({ ...target, path: probe.path ?? '/', agent: false, timeout: probe.timeoutMs }, (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      const ok = status >= 200 && status < 300;
      resolve({ ok, detail: `HTTP ${status}`, latencyMs: performance.now() - started });
    });
    request.once('timeout', () => request.destroy(new Error(`no answer within ${probe.timeoutMs}ms`)));
    request.once('error', (error) => resolve({ ok: false, detail: error.message, latencyMs: performance.now() - started }));
  });
}

/** A connect to the instance's port (or Unix socket): healthy while it accepts. */
export function tcpCheck(address: UpstreamAddress, probe: HealthProbe): Promise<HealthResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connectUpstream(address);
    socket.setTimeout(probe.timeoutMs);
    const done = (result: HealthResult): void => {
      socket.destroy();
      resolve({ ...result, latencyMs: performance.now() - started });
    };
    socket.once('connect', () => done({ ok: true, detail: 'accepting connections' }));
    socket.once('timeout', () => done({ ok: false, detail: `no connection within ${probe.timeoutMs}ms` }));
    socket.once('error', (error) => done({ ok: false, detail: error.message }));
  });
}
