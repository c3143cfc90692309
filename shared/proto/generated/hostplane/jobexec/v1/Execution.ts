// Original file: proto/jobexec/v1/jobexec.proto

import type { ExecutionStatus as _hostplane_jobexec_v1_ExecutionStatus, ExecutionStatus__Output as _hostplane_jobexec_v1_ExecutionStatus__Output } from '../../../hostplane/jobexec/v1/ExecutionStatus.ts';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../google/protobuf/Timestamp.ts';
import type { Limits as _hostplane_jobexec_v1_Limits, Limits__Output as _hostplane_jobexec_v1_Limits__Output } from '../../../hostplane/jobexec/v1/Limits.ts';
import type { Usage as _hostplane_jobexec_v1_Usage, Usage__Output as _hostplane_jobexec_v1_Usage__Output } from '../../../hostplane/jobexec/v1/Usage.ts';
import type { Long } from '@grpc/proto-loader';

export interface Execution {
  /**
   * UUID; never a PID.
   */
  'id'?: (string);
  'command'?: (string);
  'args'?: (string)[];
  /**
   * CN of the client certificate that started it.
   */
  'owner'?: (string);
  'status'?: (_hostplane_jobexec_v1_ExecutionStatus);
  /**
   * set when the command exited by itself.
   */
  'exitCode'?: (number);
  /**
   * signal name (e.g. "SIGKILL") when a signal ended the command; empty otherwise.
   */
  'signal'?: (string);
  /**
   * why it failed to start, or other detail of how it ended; empty otherwise.
   */
  'reason'?: (string);
  'startedAt'?: (_google_protobuf_Timestamp | null);
  /**
   * absent while running.
   */
  'endedAt'?: (_google_protobuf_Timestamp | null);
  'limits'?: (_hostplane_jobexec_v1_Limits | null);
  'usage'?: (_hostplane_jobexec_v1_Usage | null);
  /**
   * bytes of output kept (stdout and stderr together).
   */
  'outputBytes'?: (number | string | Long);
  /**
   * the per-job output cap was reached; the command kept running, the rest was dropped.
   */
  'outputTruncated'?: (boolean);
  '_exitCode'?: "exitCode";
}

export interface Execution__Output {
  /**
   * UUID; never a PID.
   */
  'id': (string);
  'command': (string);
  'args': (string)[];
  /**
   * CN of the client certificate that started it.
   */
  'owner': (string);
  'status': (_hostplane_jobexec_v1_ExecutionStatus__Output);
  /**
   * set when the command exited by itself.
   */
  'exitCode'?: (number);
  /**
   * signal name (e.g. "SIGKILL") when a signal ended the command; empty otherwise.
   */
  'signal': (string);
  /**
   * why it failed to start, or other detail of how it ended; empty otherwise.
   */
  'reason': (string);
  'startedAt': (_google_protobuf_Timestamp__Output | null);
  /**
   * absent while running.
   */
  'endedAt': (_google_protobuf_Timestamp__Output | null);
  'limits': (_hostplane_jobexec_v1_Limits__Output | null);
  'usage': (_hostplane_jobexec_v1_Usage__Output | null);
  /**
   * bytes of output kept (stdout and stderr together).
   */
  'outputBytes': (string);
  /**
   * the per-job output cap was reached; the command kept running, the rest was dropped.
   */
  'outputTruncated': (boolean);
  '_exitCode'?: "exitCode";
}
