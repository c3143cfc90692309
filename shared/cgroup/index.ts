// cgroup v2 through one module with an injectable root (DESIGN.md "shared/cgroup").
export {
  Cgroup,
  CgroupError,
  DEFAULT_CGROUP_ROOT,
  checkCgroupName,
  type CgroupOptions,
} from './cgroup.ts';
export {
  CGROUP2_SUPER_MAGIC,
  blockDeviceNumber,
  cgroup2Available,
  delegatedWorkGroup,
  setupDelegation,
  type DelegationOptions,
  type WorkGroupOptions,
} from './delegation.ts';
export { nodeCgroupFs, type CgroupFs } from './fs.ts';
export {
  formatCpuMax,
  formatIoMax,
  formatLimit,
  parseCpuStat,
  parseMemoryEvents,
  parseProcCgroup,
  type CpuStat,
  type IoLimit,
  type MemoryEvents,
} from './format.ts';
