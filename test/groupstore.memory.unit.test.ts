import { MemoryGroupStore } from '../internal/groupstore/index.js';
import { groupStoreContract } from './contract/groups.js';

groupStoreContract('MemoryGroupStore', () => Promise.resolve(new MemoryGroupStore()));
