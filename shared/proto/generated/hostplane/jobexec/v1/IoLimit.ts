// Original file: proto/jobexec/v1/jobexec.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Limits of one block device, as cgroup v2 io.max takes them.
 */
export interface IoLimit {
  /**
   * "MAJ:MIN" or a device path such as /dev/vda; at most 4096 bytes.
   */
  'device'?: (string);
  'rbps'?: (number | string | Long);
  'wbps'?: (number | string | Long);
  '_rbps'?: "rbps";
  '_wbps'?: "wbps";
}

/**
 * Limits of one block device, as cgroup v2 io.max takes them.
 */
export interface IoLimit__Output {
  /**
   * "MAJ:MIN" or a device path such as /dev/vda; at most 4096 bytes.
   */
  'device': (string);
  'rbps'?: (string);
  'wbps'?: (string);
  '_rbps'?: "rbps";
  '_wbps'?: "wbps";
}
