import { createOutbox, migrateOutbox, MongoOutboxStore } from '../internal/outbox/index.js';
import { outboxStoreContract } from './contract/outbox-store.js';
import { describeEachServer, useServerDb } from './harness/servers.js';

describeEachServer('MongoOutboxStore', (server) => {
  const t = useServerDb(server, 'outboxstore');
  let n = 0;

  outboxStoreContract(`MongoOutboxStore on ${server.name}`, async () => {
    const collection = `ob${++n}`;
    await migrateOutbox(t.db, { collection, partitions: 4 });
    const outbox = createOutbox(t.db, { collection, partitions: 4 });
    return {
      store: new MongoOutboxStore(t.db, { collection, partitions: 4 }),
      add: async (messages) => void (await outbox.addMany(messages)),
    };
  });
});
