// Original file: proto/jobexec/v1/jobexec.proto


export interface GetOutStreamRequest {
  'id'?: (string);
}

export interface GetOutStreamRequest__Output {
  'id': (string);
}
