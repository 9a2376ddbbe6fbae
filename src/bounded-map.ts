// A Map that remembers at most `limit` entries: adding a new key to a full one starts it over.
// For what is cheap to compute again and repeats in practice (compiled patterns, parsed values,
// route templates), where keys made of ids would otherwise grow it without end.
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (this.size >= this.limit && !this.has(key)) this.clear();
    return super.set(key, value);
  }
}
