// Original file: proto/jobexec/v1/jobexec.proto

export const Stream = {
  STREAM_UNSPECIFIED: 'STREAM_UNSPECIFIED',
  STREAM_STDOUT: 'STREAM_STDOUT',
  STREAM_STDERR: 'STREAM_STDERR',
} as const;

export type Stream =
  | 'STREAM_UNSPECIFIED'
  | 0
  | 'STREAM_STDOUT'
  | 1
  | 'STREAM_STDERR'
  | 2

export type Stream__Output = typeof Stream[keyof typeof Stream]
