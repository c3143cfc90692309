// Short names for the generated hostplane.jobexec.v1 types. `X` is what a peer receives (the
// loader's output, defaults filled in); `XIn` is what may be sent.
export type { Execution__Output as Execution } from './generated/hostplane/jobexec/v1/Execution.ts';
export type { Execution as ExecutionIn } from './generated/hostplane/jobexec/v1/Execution.ts';
export type { ExecutionStatus__Output as ExecutionStatus } from './generated/hostplane/jobexec/v1/ExecutionStatus.ts';
export type { Limits__Output as Limits } from './generated/hostplane/jobexec/v1/Limits.ts';
export type { Limits as LimitsIn } from './generated/hostplane/jobexec/v1/Limits.ts';
export type { Usage as UsageIn } from './generated/hostplane/jobexec/v1/Usage.ts';
export type { ExecuteCommandRequest__Output as ExecuteCommandRequest } from './generated/hostplane/jobexec/v1/ExecuteCommandRequest.ts';
export type { ExecuteCommandRequest as ExecuteCommandRequestIn } from './generated/hostplane/jobexec/v1/ExecuteCommandRequest.ts';
export type { ExecuteCommandResponse__Output as ExecuteCommandResponse } from './generated/hostplane/jobexec/v1/ExecuteCommandResponse.ts';
export type { ExecuteCommandResponse as ExecuteCommandResponseIn } from './generated/hostplane/jobexec/v1/ExecuteCommandResponse.ts';
export type { StopExecutionResponse__Output as StopExecutionResponse } from './generated/hostplane/jobexec/v1/StopExecutionResponse.ts';
export type { StopExecutionResponse as StopExecutionResponseIn } from './generated/hostplane/jobexec/v1/StopExecutionResponse.ts';
export type { GetExecutionResponse__Output as GetExecutionResponse } from './generated/hostplane/jobexec/v1/GetExecutionResponse.ts';
export type { GetExecutionResponse as GetExecutionResponseIn } from './generated/hostplane/jobexec/v1/GetExecutionResponse.ts';
export type { ListAllExecutionsRequest__Output as ListAllExecutionsRequest } from './generated/hostplane/jobexec/v1/ListAllExecutionsRequest.ts';
export type { ListAllExecutionsRequest as ListAllExecutionsRequestIn } from './generated/hostplane/jobexec/v1/ListAllExecutionsRequest.ts';
export type { ListAllExecutionsResponse__Output as ListAllExecutionsResponse } from './generated/hostplane/jobexec/v1/ListAllExecutionsResponse.ts';
export type { ListAllExecutionsResponse as ListAllExecutionsResponseIn } from './generated/hostplane/jobexec/v1/ListAllExecutionsResponse.ts';
export type { GetOutStreamResponse__Output as GetOutStreamResponse } from './generated/hostplane/jobexec/v1/GetOutStreamResponse.ts';
export type { GetOutStreamResponse as GetOutStreamResponseIn } from './generated/hostplane/jobexec/v1/GetOutStreamResponse.ts';
export type {
  JobExecutorClient,
  JobExecutorHandlers,
} from './generated/hostplane/jobexec/v1/JobExecutor.ts';
