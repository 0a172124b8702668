import { HubError } from '../errors/index.js';

/** Why a group refused a member: it consumes another filter than the member asked for. */
export type GroupErrorCode = 'GROUP_MISMATCH';

/** Raised by {@link GroupManager.join}. */
export class GroupError extends HubError<GroupErrorCode> {}
