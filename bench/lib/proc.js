// What the kernel says about a process: CPU time, resident memory, children (Linux /proc).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/<pid>/stat after the command name; field N of proc(5) is at index N - 3. */
function statFields(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** When the process started, in clock ticks after boot: with the pid, what identifies a process. */
export function startTimeOf(pid) {
  return statFields(pid)?.[19];
}

/** `pid` and every process below it. */
export function processTree(pid) {
  const childrenOf = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    const parent = statFields(name)?.[1];
    if (parent === undefined) continue;
    const list = childrenOf.get(parent) ?? [];
    list.push(Number(name));
    childrenOf.set(parent, list);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(childrenOf.get(String(tree[i])) ?? []));
  return tree;
}

/** User plus system CPU time of these processes, in milliseconds. */
export function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks * 1000) / CLOCK_TICKS;
}

/** Resident memory of these processes (VmRSS), in kilobytes. */
export function rssKb(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kb;
}

/** Open file descriptors of a process (entries of /proc/<pid>/fd), or undefined when it is gone. */
export function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}
