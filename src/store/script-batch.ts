// Calls of one quota script made in one round of the event loop (the admissions and settles of
// requests that arrived or ended together), sent as one call per group of keys that may share a
// call: one per user on a cluster (a user's keys share a slot), one in all on a single Redis. A
// call costs the gateway a command object, a promise, a timer and its argument encoding; a batch
// pays those once. Each caller gets its own request's answer, or its own error: the script answers
// an error reply in the array for a request whose step failed (src/quota/scripts.ts batchOf), and
// only a failure of the whole call (Redis down, a timeout) rejects every request of the batch.
const MAX_BATCH = 64;

interface Pending<R> {
  keys: ReadonlyArray<string>;
  args: ReadonlyArray<string | number>;
  resolve(answer: R): void;
  reject(err: unknown): void;
}

export class ScriptBatch<R> {
  private groups = new Map<string, Array<Pending<R>>>();
  private scheduled = false;

  constructor(
    /** Runs the batch script: `numKeys` keys, then the arguments, each request's in turn. */
    private readonly run: (numKeys: number, keysAndArgs: Array<string | number>) => Promise<R[]>,
    /** Called just before the batches of a round are sent. */
    private readonly beforeSend: () => void = () => {},
  ) {}

  add(group: string, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const list = this.groups.get(group);
      if (list) list.push({ keys, args, resolve, reject });
      else this.groups.set(group, [{ keys, args, resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const groups = this.groups;
    this.groups = new Map();
    this.beforeSend();
    for (const list of groups.values()) {
      for (let i = 0; i < list.length; i += MAX_BATCH) this.send(list.slice(i, i + MAX_BATCH));
    }
  }

  private send(batch: Array<Pending<R>>): void {
    const keys: Array<string | number> = [];
    const args: Array<string | number> = [];
    for (const p of batch) {
      for (const k of p.keys) keys.push(k);
      for (const a of p.args) args.push(a);
    }
    const numKeys = keys.length;
    for (const a of args) keys.push(a);
    this.run(numKeys, keys).then(
      (answers) => {
        for (let i = 0; i < batch.length; i++) {
          const p = batch[i] as Pending<R>;
          const answer: unknown = answers[i];
          if (answer instanceof Error) p.reject(answer);
          else if (answer === undefined) p.reject(new Error(`the batch script answered ${answers.length} of ${batch.length} requests`));
          else p.resolve(answer as R);
        }
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}
