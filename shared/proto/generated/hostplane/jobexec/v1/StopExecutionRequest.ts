// Original file: proto/jobexec/v1/jobexec.proto


export interface StopExecutionRequest {
  'id'?: (string);
}

export interface StopExecutionRequest__Output {
  'id': (string);
}
