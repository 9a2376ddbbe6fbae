// What a .cpuprofile says, in the shares bench/analysis.md quotes: busy samples by package (or by
// keyrelay directory, or Node internal module) and the functions with the most self time.
import { readFileSync } from 'node:fs';

function groupOf(frame) {
  const url = frame.url;
  if (url.includes('/dist/')) return `keyrelay ${url.split('/dist/')[1].split('/')[0].replace(/\.js$/, '')}`;
  if (url.includes('node_modules/')) return `package ${url.split('node_modules/').pop().split('/')[0]}`;
  if (url.startsWith('node:')) return `node ${url.slice(5).replace('internal/', '').split('/')[0]}`;
  return frame.functionName || '(native)';
}

/** `{busy, groups: [[name, share]], functions: [[name, share]]}` of one profile. */
export function summariseProfile(file, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const groups = new Map();
  const functions = new Map();
  let busy = 0;
  for (const node of profile.nodes) {
    const n = hits.get(node.id);
    const frame = node.callFrame;
    if (!n || frame.functionName === '(idle)') continue;
    busy += n;
    const group = groupOf(frame);
    groups.set(group, (groups.get(group) ?? 0) + n);
    const where = frame.url ? ` ${frame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + n);
  }
  const ranked = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, v / busy]);
  return { busy, groups: ranked(groups), functions: ranked(functions) };
}
