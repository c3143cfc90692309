// Original file: proto/jobexec/v1/jobexec.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Absent when unknown (no cgroup, e.g. a server running with namespaces only).
 */
export interface Usage {
  'cpuUsec'?: (number | string | Long);
  'memoryPeakBytes'?: (number | string | Long);
  '_cpuUsec'?: "cpuUsec";
  '_memoryPeakBytes'?: "memoryPeakBytes";
}

/**
 * Absent when unknown (no cgroup, e.g. a server running with namespaces only).
 */
export interface Usage__Output {
  'cpuUsec'?: (string);
  'memoryPeakBytes'?: (string);
  '_cpuUsec'?: "cpuUsec";
  '_memoryPeakBytes'?: "memoryPeakBytes";
}
