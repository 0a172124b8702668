import { MongoClient } from 'mongodb';
import { MongoLeaseStore, migrateLeases, type LeaseCollections, type LeaseStore } from '../internal/lease/index.js';
import { leaseStoreContract } from './contract/lease.js';
import { describeEachServer, useServerDb } from './harness/servers.js';

describeEachServer('MongoLeaseStore', (server) => {
  const t = useServerDb(server, 'lease');
  let n = 0;
  const namesOf = new Map<LeaseStore, LeaseCollections>();
  const clients: MongoClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  leaseStoreContract(
    `MongoLeaseStore on ${server.name}`,
    async () => {
      const names = { leases: `leases_${++n}`, members: `members_${n}` };
      await migrateLeases(t.db, names);
      const store = new MongoLeaseStore(t.db, names);
      namesOf.set(store, names);
      return store;
    },
    {
      // Each peer on its own connection, so the server sees truly concurrent claims.
      peers: async (store, count) =>
        Promise.all(
          Array.from({ length: count }, async () => {
            const c = await new MongoClient(server.url, { maxPoolSize: 1 }).connect();
            clients.push(c);
            return new MongoLeaseStore(c.db(t.name), namesOf.get(store));
          }),
        ),
    },
  );
});
