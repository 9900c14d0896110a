import net from 'node:net';

/**
 * Sends one command to QEMU's human monitor on a Unix socket and resolves with its reply (the text between
 * the command echo and the next prompt). Used to add the port forward once the guest listens.
 */
export function monitorCommand(socket: string, command: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = net.connect(socket);
    let text = '';
    let sent = false;
    const timer = setTimeout(() => {
      client.destroy();
      // `commandSent` tells a caller whether retrying could run the command twice.
      reject(Object.assign(new Error(`QEMU monitor did not answer '${command}' within ${timeoutMs}ms`), { commandSent: sent }));
    }, timeoutMs);
    client.setEncoding('utf8');
    client.on('data', (chunk: string) => {
      text += chunk;
      if (!text.includes('(qemu) ')) return;
      if (!sent) {
        sent = true;
        text = '';
        client.write(`${command}\n`);
        return;
      }
      clearTimeout(timer);
      client.end();
      // Strip the echo (with its terminal escapes) and the prompt.
      const reply = text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').split(/\r?\n/).slice(1).join('\n').replace(/\(qemu\) $/, '').trim();
      resolve(reply);
    });
    client.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Writes a line to the guest's control port (ttyS1), which the guest init reads. */
export function controlWrite(socket: string, line: string, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = net.connect(socket, () => client.end(`${line}\n`, () => resolve()));
    client.setTimeout(timeoutMs, () => {
      client.destroy();
      reject(new Error('control port timeout'));
    });
    client.on('error', reject);
  });
}
