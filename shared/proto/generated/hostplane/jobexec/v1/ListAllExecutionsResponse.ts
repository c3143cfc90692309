// Original file: proto/jobexec/v1/jobexec.proto

import type { Execution as _hostplane_jobexec_v1_Execution, Execution__Output as _hostplane_jobexec_v1_Execution__Output } from '../../../hostplane/jobexec/v1/Execution.ts';

export interface ListAllExecutionsResponse {
  'executions'?: (_hostplane_jobexec_v1_Execution)[];
}

export interface ListAllExecutionsResponse__Output {
  'executions': (_hostplane_jobexec_v1_Execution__Output)[];
}
