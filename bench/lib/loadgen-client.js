// The harness's side of bench/loadgen.js: one child process, commands over IPC.
import { fileURLToPath } from 'node:url';
import { forkTracked } from './children.js';

export function startLoadgen() {
  const child = forkTracked(fileURLToPath(new URL('../loadgen.js', import.meta.url)));
  const pending = new Map();
  let nextId = 0;
  child.on('message', ({ id, result, error }) => {
    const call = pending.get(id);
    pending.delete(id);
    if (error) call?.reject(new Error(`load generator: ${error}`));
    else call?.resolve(result);
  });
  child.once('exit', (code, signal) => {
    for (const call of pending.values()) call.reject(new Error(`load generator exited (${signal ?? code})`));
    pending.clear();
  });
  return {
    pid: child.pid,
    child,
    call(cmd, args = {}) {
      const id = ++nextId;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, ...args });
      });
    },
  };
}
