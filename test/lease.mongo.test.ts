import { MongoLeaseStore, migrateLeases } from '../internal/lease/index.js';
import { leaseStoreContract } from './contract/lease.js';
import { describeEachServer, useServerDb } from './harness/servers.js';

describeEachServer('MongoLeaseStore', (server) => {
  const t = useServerDb(server, 'lease');
  let n = 0;

  leaseStoreContract(`MongoLeaseStore on ${server.name}`, async () => {
    const names = { leases: `leases_${++n}`, members: `members_${n}` };
    await migrateLeases(t.db, names);
    return new MongoLeaseStore(t.db, names);
  });
});
