// bench/instructions.js counts a keyrelay's instructions under Valgrind's callgrind and splits them
// by V8's C++ names: the garbage collector, the compilers, and the program. The split, on lines as
// callgrind_annotate writes them (Valgrind itself is not needed here).
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a benchmark module in plain JavaScript, without types
import { countsFromAnnotation } from '../bench/lib/callgrind.js';

const ANNOTATION = `--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
4,666,000,000 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
82,956,700 ( 3.62%)  ???:void v8::internal::MarkingVisitorBase<v8::internal::ConcurrentMarkingVisitor>::ProcessStrongHeapObject [/usr/bin/node]
51,157,611 ( 2.23%)  ???:v8::internal::Sweeper::RawSweep(v8::internal::Page*) [/usr/bin/node]
47,241,099 ( 2.06%)  ???:v8::internal::compiler::GraphReducer::ReduceTop() [/usr/bin/node]
66,320,973 ( 2.89%)  ???:Builtins_LoadIC [/usr/bin/node]
21,967,584 ( 0.96%)  ???:0x000000000d28ee40 [???]
 1,000 ( 0.00%)  ???:v8::internal::JsonParser<unsigned char>::ScanJsonString(bool) [/usr/bin/node]
 2,000 ( 0.00%)  ???:v8::internal::compiler::(anonymous namespace)::SourcePositionWrapper::Reduce(v8::internal::compiler::Node*) [/usr/bin/node]
 3,000 ( 0.00%)  ???:v8::internal::LookupIterator::State(v8::internal::Handle<v8::internal::HeapObject>, v8::internal::Zone*) [/usr/bin/node]
`;

describe('bench/lib/callgrind.js', () => {
  it('splits what callgrind counted into the garbage collector, the compilers and the program', () => {
    expect(countsFromAnnotation(ANNOTATION)).toEqual({
      total: 4_666_000_000,
      gc: 82_956_700 + 51_157_611,
      compile: 47_241_099 + 2_000,
      // JIT-compiled JavaScript has no name ([???]); built-ins and the JSON parser are the program's,
      // and so is a function whose arguments merely name the heap or a zone.
      rest: 66_320_973 + 21_967_584 + 1_000 + 3_000,
    });
  });

  it('finds no total in a dump that counted nothing', () => {
    expect(countsFromAnnotation('Ir\n0  PROGRAM TOTALS\n').total).toBe(0);
  });
});
