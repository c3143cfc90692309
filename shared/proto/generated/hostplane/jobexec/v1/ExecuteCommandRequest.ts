// Original file: proto/jobexec/v1/jobexec.proto

import type { Limits as _hostplane_jobexec_v1_Limits, Limits__Output as _hostplane_jobexec_v1_Limits__Output } from '../../../hostplane/jobexec/v1/Limits.ts';

export interface ExecuteCommandRequest {
  /**
   * a program name looked up in the server's PATH, or an absolute path.
   */
  'command'?: (string);
  'args'?: (string)[];
  'limits'?: (_hostplane_jobexec_v1_Limits | null);
}

export interface ExecuteCommandRequest__Output {
  /**
   * a program name looked up in the server's PATH, or an absolute path.
   */
  'command': (string);
  'args': (string)[];
  'limits': (_hostplane_jobexec_v1_Limits__Output | null);
}
