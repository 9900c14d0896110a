import type { FastifyReply } from 'fastify';
import type { InstanceView } from '../../core/instance.ts';
import type { AuditNote } from '../../core/api/router.ts';
import { ErrorCodes, statusOf, type ErrorCode } from '../../core/errors.ts';
import type { InstanceDirectory } from '../../core/plugin-context.ts';
import type { InstanceState } from '../../core/types.ts';
import { lastLogLines, viewOf, type ApiInstanceView } from './view.ts';

const NOT_STOPPING: ReadonlySet<InstanceState> = new Set([
  'created',
  'starting',
  'running',
  'restarting',
  'stopped',
  'hibernated',
  'waking',
  'failed',
]);

/**
 * A start asked for while the instance is being stopped (an idle hibernation, say) would be a no-op in the
 * supervisor; waiting for that stop to end first makes "start it" mean what the caller expects.
 */
export async function settleStop(instance: InstanceView): Promise<void> {
  if (instance.state !== 'stopping') return;
  const bound = instance.config.drainTimeout + instance.config.stopTimeout + 10_000;
  await instance.waitForState(NOT_STOPPING, bound).catch(() => undefined);
}

export interface StartFailure {
  error: { code: ErrorCode; message: string; lastError: string | null; logs: string[] };
  instance: ApiInstanceView;
}

/**
 * The answer for a start that did not end in `running`: 503 with why (the instance's lastError and its last
 * output) and the view, so the caller sees the state the restart policy left it in.
 */
export async function startFailure(
  instances: Pick<InstanceDirectory, 'describe'>,
  instance: InstanceView,
  reply: FastifyReply,
  audit: AuditNote,
): Promise<StartFailure> {
  // lastError already names the instance ("notes:alice exited during start-up: ...").
  const message = instance.lastError ?? `${instance.key} did not start (it is ${instance.state})`;
  audit.detail = message;
  reply.code(statusOf(ErrorCodes.SPAWN_FAILED));
  return {
    error: { code: ErrorCodes.SPAWN_FAILED, message, lastError: instance.lastError, logs: lastLogLines(instance) },
    instance: await viewOf(instances, instance),
  };
}

/** Running with a live process: what every start the API waits for has to end in. */
export function isUp(instance: InstanceView): boolean {
  return instance.state === 'running' && instance.handle !== null;
}
