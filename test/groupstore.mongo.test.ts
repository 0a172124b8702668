import { MongoGroupStore, migrateGroups } from '../internal/groupstore/index.js';
import { groupStoreContract } from './contract/groups.js';
import { describeEachServer, useServerDb } from './harness/servers.js';

describeEachServer('MongoGroupStore', (server) => {
  const t = useServerDb(server, 'groupstore');
  let n = 0;

  groupStoreContract(`MongoGroupStore on ${server.name}`, async () => {
    const names = { groups: `groups_${++n}`, cursors: `group_cursors_${n}`, deliveries: `group_deliveries_${n}`, dead: `group_dead_${n}` };
    await migrateGroups(t.db, names);
    await migrateGroups(t.db, names); // idempotent
    return new MongoGroupStore(t.db, names);
  });
});
