// Original file: proto/jobexec/v1/jobexec.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ExecuteCommandRequest as _hostplane_jobexec_v1_ExecuteCommandRequest, ExecuteCommandRequest__Output as _hostplane_jobexec_v1_ExecuteCommandRequest__Output } from '../../../hostplane/jobexec/v1/ExecuteCommandRequest.ts';
import type { ExecuteCommandResponse as _hostplane_jobexec_v1_ExecuteCommandResponse, ExecuteCommandResponse__Output as _hostplane_jobexec_v1_ExecuteCommandResponse__Output } from '../../../hostplane/jobexec/v1/ExecuteCommandResponse.ts';
import type { GetExecutionRequest as _hostplane_jobexec_v1_GetExecutionRequest, GetExecutionRequest__Output as _hostplane_jobexec_v1_GetExecutionRequest__Output } from '../../../hostplane/jobexec/v1/GetExecutionRequest.ts';
import type { GetExecutionResponse as _hostplane_jobexec_v1_GetExecutionResponse, GetExecutionResponse__Output as _hostplane_jobexec_v1_GetExecutionResponse__Output } from '../../../hostplane/jobexec/v1/GetExecutionResponse.ts';
import type { GetOutStreamRequest as _hostplane_jobexec_v1_GetOutStreamRequest, GetOutStreamRequest__Output as _hostplane_jobexec_v1_GetOutStreamRequest__Output } from '../../../hostplane/jobexec/v1/GetOutStreamRequest.ts';
import type { GetOutStreamResponse as _hostplane_jobexec_v1_GetOutStreamResponse, GetOutStreamResponse__Output as _hostplane_jobexec_v1_GetOutStreamResponse__Output } from '../../../hostplane/jobexec/v1/GetOutStreamResponse.ts';
import type { ListAllExecutionsRequest as _hostplane_jobexec_v1_ListAllExecutionsRequest, ListAllExecutionsRequest__Output as _hostplane_jobexec_v1_ListAllExecutionsRequest__Output } from '../../../hostplane/jobexec/v1/ListAllExecutionsRequest.ts';
import type { ListAllExecutionsResponse as _hostplane_jobexec_v1_ListAllExecutionsResponse, ListAllExecutionsResponse__Output as _hostplane_jobexec_v1_ListAllExecutionsResponse__Output } from '../../../hostplane/jobexec/v1/ListAllExecutionsResponse.ts';
import type { StopExecutionRequest as _hostplane_jobexec_v1_StopExecutionRequest, StopExecutionRequest__Output as _hostplane_jobexec_v1_StopExecutionRequest__Output } from '../../../hostplane/jobexec/v1/StopExecutionRequest.ts';
import type { StopExecutionResponse as _hostplane_jobexec_v1_StopExecutionResponse, StopExecutionResponse__Output as _hostplane_jobexec_v1_StopExecutionResponse__Output } from '../../../hostplane/jobexec/v1/StopExecutionResponse.ts';

export interface JobExecutorClient extends grpc.Client {
  /**
   * Starts a command in its own cgroup and PID, mount and network namespaces.
   * INVALID_ARGUMENT: empty command, oversized arguments, a limit above the configured maximum.
   * RESOURCE_EXHAUSTED: max_concurrent executions are already running.
   * A binary that cannot be run still gets an id: its status is FAILED_TO_START with a reason.
   */
  ExecuteCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  ExecuteCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  ExecuteCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  ExecuteCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Starts a command in its own cgroup and PID, mount and network namespaces.
   * INVALID_ARGUMENT: empty command, oversized arguments, a limit above the configured maximum.
   * RESOURCE_EXHAUSTED: max_concurrent executions are already running.
   * A binary that cannot be run still gets an id: its status is FAILED_TO_START with a reason.
   */
  executeCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  executeCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  executeCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  executeCommand(argument: _hostplane_jobexec_v1_ExecuteCommandRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_ExecuteCommandResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Metadata of one execution.
   */
  GetExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  GetExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  GetExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  GetExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Metadata of one execution.
   */
  getExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  getExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  getExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  getExecution(argument: _hostplane_jobexec_v1_GetExecutionRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_GetExecutionResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * All output from the first byte, then live until the execution ends; then the stream ends OK.
   */
  GetOutStream(argument: _hostplane_jobexec_v1_GetOutStreamRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_hostplane_jobexec_v1_GetOutStreamResponse__Output>;
  GetOutStream(argument: _hostplane_jobexec_v1_GetOutStreamRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_hostplane_jobexec_v1_GetOutStreamResponse__Output>;
  /**
   * All output from the first byte, then live until the execution ends; then the stream ends OK.
   */
  getOutStream(argument: _hostplane_jobexec_v1_GetOutStreamRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_hostplane_jobexec_v1_GetOutStreamResponse__Output>;
  getOutStream(argument: _hostplane_jobexec_v1_GetOutStreamRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_hostplane_jobexec_v1_GetOutStreamResponse__Output>;
  
  /**
   * The executions the caller's CN owns, oldest first (by started_at, then id), one page at a
   * time: follow next_page_token until it is empty. A page holds at most page_size entries and
   * stays well under 4 MiB encoded (at least one entry). A request without paging fields (an
   * older client) gets the first page.
   * INVALID_ARGUMENT: a page_token this server did not hand out.
   */
  ListAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  ListAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  ListAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  ListAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * The executions the caller's CN owns, oldest first (by started_at, then id), one page at a
   * time: follow next_page_token until it is empty. A page holds at most page_size entries and
   * stays well under 4 MiB encoded (at least one entry). A request without paging fields (an
   * older client) gets the first page.
   * INVALID_ARGUMENT: a page_token this server did not hand out.
   */
  listAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  listAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  listAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  listAllExecutions(argument: _hostplane_jobexec_v1_ListAllExecutionsRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_ListAllExecutionsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * SIGTERM to the command, then SIGKILL to the whole job after stop_grace; answers once the
   * job is gone. Stopping an execution that already ended answers its final metadata.
   */
  StopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  StopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  StopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  StopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  /**
   * SIGTERM to the command, then SIGKILL to the whole job after stop_grace; answers once the
   * job is gone. Stopping an execution that already ended answers its final metadata.
   */
  stopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  stopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  stopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  stopExecution(argument: _hostplane_jobexec_v1_StopExecutionRequest, callback: grpc.requestCallback<_hostplane_jobexec_v1_StopExecutionResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface JobExecutorHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Starts a command in its own cgroup and PID, mount and network namespaces.
   * INVALID_ARGUMENT: empty command, oversized arguments, a limit above the configured maximum.
   * RESOURCE_EXHAUSTED: max_concurrent executions are already running.
   * A binary that cannot be run still gets an id: its status is FAILED_TO_START with a reason.
   */
  ExecuteCommand: grpc.handleUnaryCall<_hostplane_jobexec_v1_ExecuteCommandRequest__Output, _hostplane_jobexec_v1_ExecuteCommandResponse>;
  
  /**
   * Metadata of one execution.
   */
  GetExecution: grpc.handleUnaryCall<_hostplane_jobexec_v1_GetExecutionRequest__Output, _hostplane_jobexec_v1_GetExecutionResponse>;
  
  /**
   * All output from the first byte, then live until the execution ends; then the stream ends OK.
   */
  GetOutStream: grpc.handleServerStreamingCall<_hostplane_jobexec_v1_GetOutStreamRequest__Output, _hostplane_jobexec_v1_GetOutStreamResponse>;
  
  /**
   * The executions the caller's CN owns, oldest first (by started_at, then id), one page at a
   * time: follow next_page_token until it is empty. A page holds at most page_size entries and
   * stays well under 4 MiB encoded (at least one entry). A request without paging fields (an
   * older client) gets the first page.
   * INVALID_ARGUMENT: a page_token this server did not hand out.
   */
  ListAllExecutions: grpc.handleUnaryCall<_hostplane_jobexec_v1_ListAllExecutionsRequest__Output, _hostplane_jobexec_v1_ListAllExecutionsResponse>;
  
  /**
   * SIGTERM to the command, then SIGKILL to the whole job after stop_grace; answers once the
   * job is gone. Stopping an execution that already ended answers its final metadata.
   */
  StopExecution: grpc.handleUnaryCall<_hostplane_jobexec_v1_StopExecutionRequest__Output, _hostplane_jobexec_v1_StopExecutionResponse>;
  
}

export interface JobExecutorDefinition extends grpc.ServiceDefinition {
  ExecuteCommand: MethodDefinition<_hostplane_jobexec_v1_ExecuteCommandRequest, _hostplane_jobexec_v1_ExecuteCommandResponse, _hostplane_jobexec_v1_ExecuteCommandRequest__Output, _hostplane_jobexec_v1_ExecuteCommandResponse__Output>
  GetExecution: MethodDefinition<_hostplane_jobexec_v1_GetExecutionRequest, _hostplane_jobexec_v1_GetExecutionResponse, _hostplane_jobexec_v1_GetExecutionRequest__Output, _hostplane_jobexec_v1_GetExecutionResponse__Output>
  GetOutStream: MethodDefinition<_hostplane_jobexec_v1_GetOutStreamRequest, _hostplane_jobexec_v1_GetOutStreamResponse, _hostplane_jobexec_v1_GetOutStreamRequest__Output, _hostplane_jobexec_v1_GetOutStreamResponse__Output>
  ListAllExecutions: MethodDefinition<_hostplane_jobexec_v1_ListAllExecutionsRequest, _hostplane_jobexec_v1_ListAllExecutionsResponse, _hostplane_jobexec_v1_ListAllExecutionsRequest__Output, _hostplane_jobexec_v1_ListAllExecutionsResponse__Output>
  StopExecution: MethodDefinition<_hostplane_jobexec_v1_StopExecutionRequest, _hostplane_jobexec_v1_StopExecutionResponse, _hostplane_jobexec_v1_StopExecutionRequest__Output, _hostplane_jobexec_v1_StopExecutionResponse__Output>
}
