/** The in-memory lease stand-in used by group unit tests and benchmarks keeps the real adapters' contract. */
import { leaseStoreContract } from './contract/lease.js';
import { MemoryLeaseStore } from './harness/memory-ports.js';

leaseStoreContract('MemoryLeaseStore (test harness)', () => Promise.resolve(new MemoryLeaseStore()));
