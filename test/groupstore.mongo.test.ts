import { MongoGroupStore, migrateGroups } from '../internal/groupstore/index.js';
import { groupStoreContract } from './contract/groups.js';
import { useTestDb } from './harness/db.js';

const t = useTestDb('groupstore');
let n = 0;

groupStoreContract('MongoGroupStore', async () => {
  const names = { groups: `groups_${++n}`, cursors: `group_cursors_${n}`, deliveries: `group_deliveries_${n}`, dead: `group_dead_${n}` };
  await migrateGroups(t.db, names);
  await migrateGroups(t.db, names); // idempotent
  return new MongoGroupStore(t.db, names);
});
