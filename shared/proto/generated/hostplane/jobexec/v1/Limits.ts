// Original file: proto/jobexec/v1/jobexec.proto

import type { IoLimit as _hostplane_jobexec_v1_IoLimit, IoLimit__Output as _hostplane_jobexec_v1_IoLimit__Output } from '../../../hostplane/jobexec/v1/IoLimit.ts';
import type { Long } from '@grpc/proto-loader';

/**
 * Resource limits of one execution. In a request, absent fields take the server's defaults;
 * in an answer, the effective limits.
 */
export interface Limits {
  /**
   * percent of ONE cpu (150 = one and a half cpus) -> cpu.max.
   */
  'cpuPercent'?: (number);
  'memoryMaxBytes'?: (number | string | Long);
  'memoryHighBytes'?: (number | string | Long);
  'pidsMax'?: (number);
  /**
   * at most 64 entries.
   */
  'io'?: (_hostplane_jobexec_v1_IoLimit)[];
  '_cpuPercent'?: "cpuPercent";
  '_memoryMaxBytes'?: "memoryMaxBytes";
  '_memoryHighBytes'?: "memoryHighBytes";
  '_pidsMax'?: "pidsMax";
}

/**
 * Resource limits of one execution. In a request, absent fields take the server's defaults;
 * in an answer, the effective limits.
 */
export interface Limits__Output {
  /**
   * percent of ONE cpu (150 = one and a half cpus) -> cpu.max.
   */
  'cpuPercent'?: (number);
  'memoryMaxBytes'?: (string);
  'memoryHighBytes'?: (string);
  'pidsMax'?: (number);
  /**
   * at most 64 entries.
   */
  'io': (_hostplane_jobexec_v1_IoLimit__Output)[];
  '_cpuPercent'?: "cpuPercent";
  '_memoryMaxBytes'?: "memoryMaxBytes";
  '_memoryHighBytes'?: "memoryHighBytes";
  '_pidsMax'?: "pidsMax";
}
