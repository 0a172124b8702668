/** Every port's contract suite against its in-memory adapter (no database). */
import { MemoryEventLog, MemoryEventStorage } from '../internal/eventlog/index.js';
import { MemoryLeaseStore } from '../internal/lease/index.js';
import { MemoryOutboxStore } from '../internal/outbox/index.js';
import { eventLogContract } from './contract/eventlog.js';
import { leaseStoreContract } from './contract/lease.js';
import { outboxStoreContract } from './contract/outbox-store.js';

eventLogContract('MemoryEventLog', () => {
  const storage = new MemoryEventStorage();
  const a = new MemoryEventLog(storage);
  return Promise.resolve({ a, b: new MemoryEventLog(storage), punchHole: (p, seq) => Promise.resolve(a.punchHole(p, seq)) });
});

leaseStoreContract('MemoryLeaseStore', () => Promise.resolve(new MemoryLeaseStore()));

outboxStoreContract('MemoryOutboxStore', () => {
  const store = new MemoryOutboxStore({ partitions: 4 });
  return Promise.resolve({ store, add: async (messages) => void (await store.add(messages)) });
});
