import { MongoLeaseStore, migrateLeases } from '../internal/lease/index.js';
import { leaseStoreContract } from './contract/lease.js';
import { useTestDb } from './harness/db.js';

const t = useTestDb('lease');
let n = 0;

leaseStoreContract('MongoLeaseStore', async () => {
  const names = { leases: `leases_${++n}`, members: `members_${n}` };
  await migrateLeases(t.db, names);
  return new MongoLeaseStore(t.db, names);
});
