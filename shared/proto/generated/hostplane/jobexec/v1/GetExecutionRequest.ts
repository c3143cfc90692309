// Original file: proto/jobexec/v1/jobexec.proto


export interface GetExecutionRequest {
  'id'?: (string);
}

export interface GetExecutionRequest__Output {
  'id': (string);
}
