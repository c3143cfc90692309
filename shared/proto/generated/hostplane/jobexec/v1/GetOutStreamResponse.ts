// Original file: proto/jobexec/v1/jobexec.proto

import type { OutputData as _hostplane_jobexec_v1_OutputData, OutputData__Output as _hostplane_jobexec_v1_OutputData__Output } from '../../../hostplane/jobexec/v1/OutputData.ts';
import type { OutputTruncated as _hostplane_jobexec_v1_OutputTruncated, OutputTruncated__Output as _hostplane_jobexec_v1_OutputTruncated__Output } from '../../../hostplane/jobexec/v1/OutputTruncated.ts';

export interface GetOutStreamResponse {
  'data'?: (_hostplane_jobexec_v1_OutputData | null);
  'truncated'?: (_hostplane_jobexec_v1_OutputTruncated | null);
  'chunk'?: "data"|"truncated";
}

export interface GetOutStreamResponse__Output {
  'data'?: (_hostplane_jobexec_v1_OutputData__Output | null);
  'truncated'?: (_hostplane_jobexec_v1_OutputTruncated__Output | null);
  'chunk'?: "data"|"truncated";
}
