// Original file: proto/jobexec/v1/jobexec.proto

import type { Execution as _hostplane_jobexec_v1_Execution, Execution__Output as _hostplane_jobexec_v1_Execution__Output } from '../../../hostplane/jobexec/v1/Execution.ts';

export interface ListAllExecutionsResponse {
  'executions'?: (_hostplane_jobexec_v1_Execution)[];
  /**
   * where the next page starts; empty on the last page.
   */
  'nextPageToken'?: (string);
}

export interface ListAllExecutionsResponse__Output {
  'executions': (_hostplane_jobexec_v1_Execution__Output)[];
  /**
   * where the next page starts; empty on the last page.
   */
  'nextPageToken': (string);
}
