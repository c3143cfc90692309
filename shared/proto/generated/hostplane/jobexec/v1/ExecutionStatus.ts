// Original file: proto/jobexec/v1/jobexec.proto

export const ExecutionStatus = {
  EXECUTION_STATUS_UNSPECIFIED: 'EXECUTION_STATUS_UNSPECIFIED',
  EXECUTION_STATUS_RUNNING: 'EXECUTION_STATUS_RUNNING',
  /**
   * the command exited by itself; see exit_code (or signal).
   */
  EXECUTION_STATUS_EXITED: 'EXECUTION_STATUS_EXITED',
  /**
   * ended by StopExecution within stop_grace (the command handled SIGTERM).
   */
  EXECUTION_STATUS_STOPPED: 'EXECUTION_STATUS_STOPPED',
  /**
   * ended by SIGKILL: StopExecution past stop_grace, or killed from outside.
   */
  EXECUTION_STATUS_KILLED: 'EXECUTION_STATUS_KILLED',
  /**
   * the kernel's OOM killer ended it at memory.max.
   */
  EXECUTION_STATUS_OOM_KILLED: 'EXECUTION_STATUS_OOM_KILLED',
  /**
   * the command never ran (missing binary, setup failure); see reason.
   */
  EXECUTION_STATUS_FAILED_TO_START: 'EXECUTION_STATUS_FAILED_TO_START',
  /**
   * it was running when the daemon restarted; its cgroup has been removed.
   */
  EXECUTION_STATUS_LOST: 'EXECUTION_STATUS_LOST',
} as const;

export type ExecutionStatus =
  | 'EXECUTION_STATUS_UNSPECIFIED'
  | 0
  | 'EXECUTION_STATUS_RUNNING'
  | 1
  /**
   * the command exited by itself; see exit_code (or signal).
   */
  | 'EXECUTION_STATUS_EXITED'
  | 2
  /**
   * ended by StopExecution within stop_grace (the command handled SIGTERM).
   */
  | 'EXECUTION_STATUS_STOPPED'
  | 3
  /**
   * ended by SIGKILL: StopExecution past stop_grace, or killed from outside.
   */
  | 'EXECUTION_STATUS_KILLED'
  | 4
  /**
   * the kernel's OOM killer ended it at memory.max.
   */
  | 'EXECUTION_STATUS_OOM_KILLED'
  | 5
  /**
   * the command never ran (missing binary, setup failure); see reason.
   */
  | 'EXECUTION_STATUS_FAILED_TO_START'
  | 6
  /**
   * it was running when the daemon restarted; its cgroup has been removed.
   */
  | 'EXECUTION_STATUS_LOST'
  | 7

export type ExecutionStatus__Output = typeof ExecutionStatus[keyof typeof ExecutionStatus]
