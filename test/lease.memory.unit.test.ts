/** The in-memory lease adapter (used by unit tests of coordinators and groups, and by benchmarks) keeps the real adapters' contract. */
import { MemoryLeaseStore } from '../internal/lease/index.js';
import { leaseStoreContract } from './contract/lease.js';

leaseStoreContract('MemoryLeaseStore', () => Promise.resolve(new MemoryLeaseStore()));
