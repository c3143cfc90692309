// Original file: proto/jobexec/v1/jobexec.proto

import type { Execution as _hostplane_jobexec_v1_Execution, Execution__Output as _hostplane_jobexec_v1_Execution__Output } from '../../../hostplane/jobexec/v1/Execution.ts';

export interface StopExecutionResponse {
  'execution'?: (_hostplane_jobexec_v1_Execution | null);
}

export interface StopExecutionResponse__Output {
  'execution': (_hostplane_jobexec_v1_Execution__Output | null);
}
