// Original file: proto/jobexec/v1/jobexec.proto

import type { Stream as _hostplane_jobexec_v1_Stream, Stream__Output as _hostplane_jobexec_v1_Stream__Output } from '../../../hostplane/jobexec/v1/Stream.ts';

export interface OutputData {
  'stream'?: (_hostplane_jobexec_v1_Stream);
  'data'?: (Buffer | Uint8Array | string);
}

export interface OutputData__Output {
  'stream': (_hostplane_jobexec_v1_Stream__Output);
  'data': (Buffer);
}
