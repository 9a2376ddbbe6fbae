// Reading a callgrind dump (bench/instructions.js): the instructions counted, split into V8's own
// work, told by its C++ names (the garbage collector; the compilers, whatever is still being
// optimised in the counted window, which differs from one start to the next), and the rest: the
// program itself, its JIT-compiled JavaScript, V8's built-in functions, Node and the libraries.
import { execFileSync } from 'node:child_process';

// Matched on a function's qualified name only (its arguments name HeapObject, Zone … everywhere).
const GC = /heap::|Heap::|Marking|Sweeper|Scaveng|Evacuat|MarkCompact|RememberedSet|SlotSet|GCTracer|MemoryChunk|MemoryAllocator|WriteBarrier|Space::/;
const COMPILER = /compiler::|Compiler::|CompilationJob|CompileDispatcher|maglev::|baseline::|interpreter::Bytecode|internal::Parser|ParserBase|PreParser|Scanner::|AstNode|Zone::/;

/** `v8::internal::Sweeper::RawSweep` of `  51,157,611 ( 2.23%)  ???:v8::internal::Sweeper::RawSweep(v8::internal::Page*) [/usr/bin/node]`. */
function functionName(line) {
  const start = line.indexOf(':', line.indexOf(')')) + 1;
  const rest = line.slice(start);
  const open = rest.indexOf('(');
  return open === -1 ? rest : rest.slice(0, open);
}

/** The split of `callgrind_annotate --inclusive=no --threshold=100` output. */
export function countsFromAnnotation(text) {
  const counts = { total: 0, gc: 0, compile: 0, rest: 0 };
  for (const line of text.split('\n')) {
    const match = /^\s*([\d,]+) \(/.exec(line);
    if (!match) continue;
    const n = Number(match[1].replaceAll(',', ''));
    if (line.includes('PROGRAM TOTALS')) counts.total = n;
    else if (GC.test(functionName(line))) counts.gc += n;
    else if (COMPILER.test(functionName(line))) counts.compile += n;
    else counts.rest += n;
  }
  return counts;
}

/** The split of a dump file; throws when it counted nothing (counting was never switched on). */
export function countsOf(file) {
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const counts = countsFromAnnotation(text);
  if (counts.total === 0) throw new Error(`${file}: no instructions counted`);
  return counts;
}
