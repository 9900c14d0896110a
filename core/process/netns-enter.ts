import { accessSync, constants } from 'node:fs';

/** nsenter from util-linux; looked up once, by absolute path (the instance's PATH may not have /usr/bin). */
const NSENTER = ['/usr/bin/nsenter', '/bin/nsenter', '/usr/sbin/nsenter'].find((candidate) => {
  try {
    accessSync(candidate, constants.X_OK);
    return true;
  } catch {
    return false;
  }
});

/**
 * The start command, rewritten to run inside the network namespace file `netns` (/run/netns/NAME).
 * `nsenter --net` (about 2 ms, like `ip netns exec`, but without the mount namespace and /sys remount
 * `ip netns exec` adds) joins it and execs the program in place, so the pid, process group and exit status
 * stay the app's (or its launcher's, like bwrap, which then shares that namespace with --share-net).
 */
export function enterNetns(netns: string, command: string, args: readonly string[]): { command: string; args: string[] } {
  return { command: NSENTER ?? 'nsenter', args: [`--net=${netns}`, '--', command, ...args] };
}
