import { MongoError, type Db, type IndexDescription } from 'mongodb';
import { MONGO_ERROR } from './errors.js';

/** A collection and the indexes it must have. */
export interface CollectionSpec {
  name: string;
  indexes: IndexDescription[];
}

/**
 * Idempotently creates each collection and its missing indexes (the start-up
 * migration step). Lists the database's collections once, however many specs.
 */
export async function ensureCollections(db: Db, specs: readonly CollectionSpec[]): Promise<void> {
  const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  for (const spec of specs) {
    if (!existing.has(spec.name)) {
      try {
        await db.createCollection(spec.name);
      } catch (err) {
        // Another replica may have created it between our listing and our call.
        if (!(err instanceof MongoError && err.code === MONGO_ERROR.NamespaceExists)) throw err;
      }
    }
    if (spec.indexes.length > 0) await createMissingIndexes(db, spec.name, spec.indexes);
  }
}

/** Idempotently creates `indexes` on `collection` (and the collection itself). */
export async function ensureIndexes(db: Db, collection: string, indexes: IndexDescription[]): Promise<void> {
  await ensureCollections(db, [{ name: collection, indexes }]);
}

async function createMissingIndexes(db: Db, collection: string, indexes: IndexDescription[]): Promise<void> {
  // Create only what is missing: cheaper, and FerretDB 1.x drops the connection when
  // asked to re-create several existing indexes at once.
  const c = db.collection(collection);
  const missing = async (): Promise<IndexDescription[]> => {
    const names = new Set((await c.listIndexes().toArray()).map((i: { name?: unknown }) => String(i.name)));
    return indexes.filter((i) => i.name === undefined || !names.has(i.name));
  };
  const todo = await missing();
  if (todo.length === 0) return;
  try {
    await c.createIndexes(todo);
  } catch (err) {
    // A concurrent replica may have won the race; fine if everything now exists.
    if ((await missing()).length > 0) throw err;
  }
}
