// Where the catalog (catalog.ts) lives and how its changes reach every process. Each write replaces
// the whole document and moves a version counter, in one atomic step that fails when another writer
// came first (then the change is applied again to what that writer left): a change is all or
// nothing and none is lost. Readers are told of a new version by a notification, and compare the
// counter as a fallback (a notification sent while a process was cut off from the store is lost).
import { type Catalog, cloneCatalog, EMPTY_CATALOG } from './catalog.js';

export interface VersionedCatalog {
  version: number;
  catalog: Catalog;
}

export interface CatalogStore {
  read(): Promise<VersionedCatalog>;
  /** The version counter alone: what a process compares to see whether it is behind. */
  version(): Promise<number>;
  /**
   * Applies `change` to the catalog as stored now and writes the result; `change` may throw, and
   * then nothing is written. Resolves the version written and what the change returned.
   */
  update<T>(change: (catalog: Catalog) => T): Promise<VersionedCatalog & { result: T }>;
  /**
   * Calls `listener` when the catalog may have a new version: with the version counter when it was
   * read (the fallback poll, which calls on every round), without one on a notification.
   */
  watch(listener: (version?: number) => void): () => void;
  close(): Promise<void>;
}

/** One process: the catalog in memory, listeners told at once. */
export class MemoryCatalogStore implements CatalogStore {
  private current: VersionedCatalog = { version: 0, catalog: cloneCatalog(EMPTY_CATALOG) };
  private readonly listeners = new Set<(version?: number) => void>();

  async read(): Promise<VersionedCatalog> {
    return { version: this.current.version, catalog: cloneCatalog(this.current.catalog) };
  }

  async version(): Promise<number> {
    return this.current.version;
  }

  async update<T>(change: (catalog: Catalog) => T): Promise<VersionedCatalog & { result: T }> {
    const draft = cloneCatalog(this.current.catalog);
    const result = change(draft);
    this.current = { version: this.current.version + 1, catalog: draft };
    for (const listener of this.listeners) queueMicrotask(() => listener());
    return { version: this.current.version, catalog: cloneCatalog(draft), result };
  }

  watch(listener: (version?: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
