import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp.ts';
import type { ExecuteCommandRequest as _hostplane_jobexec_v1_ExecuteCommandRequest, ExecuteCommandRequest__Output as _hostplane_jobexec_v1_ExecuteCommandRequest__Output } from './hostplane/jobexec/v1/ExecuteCommandRequest.ts';
import type { ExecuteCommandResponse as _hostplane_jobexec_v1_ExecuteCommandResponse, ExecuteCommandResponse__Output as _hostplane_jobexec_v1_ExecuteCommandResponse__Output } from './hostplane/jobexec/v1/ExecuteCommandResponse.ts';
import type { Execution as _hostplane_jobexec_v1_Execution, Execution__Output as _hostplane_jobexec_v1_Execution__Output } from './hostplane/jobexec/v1/Execution.ts';
import type { GetExecutionRequest as _hostplane_jobexec_v1_GetExecutionRequest, GetExecutionRequest__Output as _hostplane_jobexec_v1_GetExecutionRequest__Output } from './hostplane/jobexec/v1/GetExecutionRequest.ts';
import type { GetExecutionResponse as _hostplane_jobexec_v1_GetExecutionResponse, GetExecutionResponse__Output as _hostplane_jobexec_v1_GetExecutionResponse__Output } from './hostplane/jobexec/v1/GetExecutionResponse.ts';
import type { GetOutStreamRequest as _hostplane_jobexec_v1_GetOutStreamRequest, GetOutStreamRequest__Output as _hostplane_jobexec_v1_GetOutStreamRequest__Output } from './hostplane/jobexec/v1/GetOutStreamRequest.ts';
import type { GetOutStreamResponse as _hostplane_jobexec_v1_GetOutStreamResponse, GetOutStreamResponse__Output as _hostplane_jobexec_v1_GetOutStreamResponse__Output } from './hostplane/jobexec/v1/GetOutStreamResponse.ts';
import type { IoLimit as _hostplane_jobexec_v1_IoLimit, IoLimit__Output as _hostplane_jobexec_v1_IoLimit__Output } from './hostplane/jobexec/v1/IoLimit.ts';
import type { JobExecutorClient as _hostplane_jobexec_v1_JobExecutorClient, JobExecutorDefinition as _hostplane_jobexec_v1_JobExecutorDefinition } from './hostplane/jobexec/v1/JobExecutor.ts';
import type { Limits as _hostplane_jobexec_v1_Limits, Limits__Output as _hostplane_jobexec_v1_Limits__Output } from './hostplane/jobexec/v1/Limits.ts';
import type { ListAllExecutionsRequest as _hostplane_jobexec_v1_ListAllExecutionsRequest, ListAllExecutionsRequest__Output as _hostplane_jobexec_v1_ListAllExecutionsRequest__Output } from './hostplane/jobexec/v1/ListAllExecutionsRequest.ts';
import type { ListAllExecutionsResponse as _hostplane_jobexec_v1_ListAllExecutionsResponse, ListAllExecutionsResponse__Output as _hostplane_jobexec_v1_ListAllExecutionsResponse__Output } from './hostplane/jobexec/v1/ListAllExecutionsResponse.ts';
import type { OutputData as _hostplane_jobexec_v1_OutputData, OutputData__Output as _hostplane_jobexec_v1_OutputData__Output } from './hostplane/jobexec/v1/OutputData.ts';
import type { OutputTruncated as _hostplane_jobexec_v1_OutputTruncated, OutputTruncated__Output as _hostplane_jobexec_v1_OutputTruncated__Output } from './hostplane/jobexec/v1/OutputTruncated.ts';
import type { StopExecutionRequest as _hostplane_jobexec_v1_StopExecutionRequest, StopExecutionRequest__Output as _hostplane_jobexec_v1_StopExecutionRequest__Output } from './hostplane/jobexec/v1/StopExecutionRequest.ts';
import type { StopExecutionResponse as _hostplane_jobexec_v1_StopExecutionResponse, StopExecutionResponse__Output as _hostplane_jobexec_v1_StopExecutionResponse__Output } from './hostplane/jobexec/v1/StopExecutionResponse.ts';
import type { Usage as _hostplane_jobexec_v1_Usage, Usage__Output as _hostplane_jobexec_v1_Usage__Output } from './hostplane/jobexec/v1/Usage.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  google: {
    protobuf: {
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
  hostplane: {
    jobexec: {
      v1: {
        ExecuteCommandRequest: MessageTypeDefinition<_hostplane_jobexec_v1_ExecuteCommandRequest, _hostplane_jobexec_v1_ExecuteCommandRequest__Output>
        ExecuteCommandResponse: MessageTypeDefinition<_hostplane_jobexec_v1_ExecuteCommandResponse, _hostplane_jobexec_v1_ExecuteCommandResponse__Output>
        Execution: MessageTypeDefinition<_hostplane_jobexec_v1_Execution, _hostplane_jobexec_v1_Execution__Output>
        ExecutionStatus: EnumTypeDefinition
        GetExecutionRequest: MessageTypeDefinition<_hostplane_jobexec_v1_GetExecutionRequest, _hostplane_jobexec_v1_GetExecutionRequest__Output>
        GetExecutionResponse: MessageTypeDefinition<_hostplane_jobexec_v1_GetExecutionResponse, _hostplane_jobexec_v1_GetExecutionResponse__Output>
        GetOutStreamRequest: MessageTypeDefinition<_hostplane_jobexec_v1_GetOutStreamRequest, _hostplane_jobexec_v1_GetOutStreamRequest__Output>
        GetOutStreamResponse: MessageTypeDefinition<_hostplane_jobexec_v1_GetOutStreamResponse, _hostplane_jobexec_v1_GetOutStreamResponse__Output>
        IoLimit: MessageTypeDefinition<_hostplane_jobexec_v1_IoLimit, _hostplane_jobexec_v1_IoLimit__Output>
        JobExecutor: SubtypeConstructor<typeof grpc.Client, _hostplane_jobexec_v1_JobExecutorClient> & { service: _hostplane_jobexec_v1_JobExecutorDefinition }
        Limits: MessageTypeDefinition<_hostplane_jobexec_v1_Limits, _hostplane_jobexec_v1_Limits__Output>
        ListAllExecutionsRequest: MessageTypeDefinition<_hostplane_jobexec_v1_ListAllExecutionsRequest, _hostplane_jobexec_v1_ListAllExecutionsRequest__Output>
        ListAllExecutionsResponse: MessageTypeDefinition<_hostplane_jobexec_v1_ListAllExecutionsResponse, _hostplane_jobexec_v1_ListAllExecutionsResponse__Output>
        OutputData: MessageTypeDefinition<_hostplane_jobexec_v1_OutputData, _hostplane_jobexec_v1_OutputData__Output>
        OutputTruncated: MessageTypeDefinition<_hostplane_jobexec_v1_OutputTruncated, _hostplane_jobexec_v1_OutputTruncated__Output>
        StopExecutionRequest: MessageTypeDefinition<_hostplane_jobexec_v1_StopExecutionRequest, _hostplane_jobexec_v1_StopExecutionRequest__Output>
        StopExecutionResponse: MessageTypeDefinition<_hostplane_jobexec_v1_StopExecutionResponse, _hostplane_jobexec_v1_StopExecutionResponse__Output>
        Stream: EnumTypeDefinition
        Usage: MessageTypeDefinition<_hostplane_jobexec_v1_Usage, _hostplane_jobexec_v1_Usage__Output>
      }
    }
  }
}

