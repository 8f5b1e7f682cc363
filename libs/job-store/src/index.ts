export { JobStore, JobNotFoundError, JobConflictError, JobExistsError, decodeStored } from './job-store';
export type { ReadOptions } from './job-store';
