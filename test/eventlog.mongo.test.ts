import { MongoEventLog, migrateEventLog } from '../internal/eventlog/index.js';
import { eventLogContract } from './contract/eventlog.js';
import { describeEachServer, useServerDb } from './harness/servers.js';

describeEachServer('MongoEventLog', (server) => {
  const t = useServerDb(server, 'eventlog');
  let n = 0;

  eventLogContract(`MongoEventLog on ${server.name}`, async () => {
    const names = { events: `events_${++n}`, fences: `fences_${n}`, stalls: `stalls_${n}` };
    await migrateEventLog(t.db, names);
    return {
      a: new MongoEventLog(t.db, names),
      b: new MongoEventLog(t.db, names),
      punchHole: async (partition, seq) => void (await t.db.collection(names.events).deleteOne({ partition, seq })),
    };
  });

  describe('MongoEventLog migrations', () => {
    it('creates the unique and range indexes idempotently', async () => {
      const names = { events: 'events_mig', fences: 'fences_mig', stalls: 'stalls_mig' };
      await migrateEventLog(t.db, names);
      await migrateEventLog(t.db, names);
      const indexes = await t.db.collection(names.events).indexes();
      const byName = new Map(indexes.map((i) => [i.name, i]));
      expect(byName.get('partition_seq')?.unique).toBe(true);
      expect(byName.has('topic_partition_seq')).toBe(true);
      expect(byName.has('topic_key_seq')).toBe(true);
      expect(byName.get('partition_publishedAt_seq')?.key).toEqual({ partition: 1, publishedAt: 1, seq: 1 });
    });
  });
});
