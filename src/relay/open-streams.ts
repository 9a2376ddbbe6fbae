// The answers being streamed and the WebSockets open right now, so that a shutdown can end
// them at the end of its grace period (docs/reliability.md, cases 37, 39) instead of cutting them blindly.
export class OpenStreams {
  private readonly open = new Set<() => void>();

  /** Registers how to end one stream now; call the returned function when it ends by itself. */
  add(interrupt: () => void): () => void {
    this.open.add(interrupt);
    return () => this.open.delete(interrupt);
  }

  get size(): number {
    return this.open.size;
  }

  /** Ends every open stream; resolves how many there were. */
  interruptAll(): number {
    const all = [...this.open];
    this.open.clear();
    for (const interrupt of all) interrupt();
    return all.length;
  }
}
