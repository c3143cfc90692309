// Original file: proto/jobexec/v1/jobexec.proto


export interface ListAllExecutionsRequest {
}

export interface ListAllExecutionsRequest__Output {
}
