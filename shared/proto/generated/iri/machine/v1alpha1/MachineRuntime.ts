// Original file: proto/iri/machine/v1alpha1/api.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ExecRequest as _iri_machine_v1alpha1_ExecRequest, ExecRequest__Output as _iri_machine_v1alpha1_ExecRequest__Output } from '../../../iri/machine/v1alpha1/ExecRequest.ts';
import type { ExecResponse as _iri_machine_v1alpha1_ExecResponse, ExecResponse__Output as _iri_machine_v1alpha1_ExecResponse__Output } from '../../../iri/machine/v1alpha1/ExecResponse.ts';
import type { ListMachinesRequest as _iri_machine_v1alpha1_ListMachinesRequest, ListMachinesRequest__Output as _iri_machine_v1alpha1_ListMachinesRequest__Output } from '../../../iri/machine/v1alpha1/ListMachinesRequest.ts';
import type { ListMachinesResponse as _iri_machine_v1alpha1_ListMachinesResponse, ListMachinesResponse__Output as _iri_machine_v1alpha1_ListMachinesResponse__Output } from '../../../iri/machine/v1alpha1/ListMachinesResponse.ts';

export interface MachineRuntimeClient extends grpc.Client {
  /**
   * A one-time URL where the exec session of the machine is served.
   * RESOURCE_EXHAUSTED when too many sessions are pending; NOT_FOUND for an unknown machine id.
   */
  Exec(argument: _iri_machine_v1alpha1_ExecRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  Exec(argument: _iri_machine_v1alpha1_ExecRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  Exec(argument: _iri_machine_v1alpha1_ExecRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  Exec(argument: _iri_machine_v1alpha1_ExecRequest, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  /**
   * A one-time URL where the exec session of the machine is served.
   * RESOURCE_EXHAUSTED when too many sessions are pending; NOT_FOUND for an unknown machine id.
   */
  exec(argument: _iri_machine_v1alpha1_ExecRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  exec(argument: _iri_machine_v1alpha1_ExecRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  exec(argument: _iri_machine_v1alpha1_ExecRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  exec(argument: _iri_machine_v1alpha1_ExecRequest, callback: grpc.requestCallback<_iri_machine_v1alpha1_ExecResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Machines the runtime manages, with their labels (namespace and name among them).
   */
  ListMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  ListMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  ListMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  ListMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Machines the runtime manages, with their labels (namespace and name among them).
   */
  listMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  listMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  listMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  listMachines(argument: _iri_machine_v1alpha1_ListMachinesRequest, callback: grpc.requestCallback<_iri_machine_v1alpha1_ListMachinesResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface MachineRuntimeHandlers extends grpc.UntypedServiceImplementation {
  /**
   * A one-time URL where the exec session of the machine is served.
   * RESOURCE_EXHAUSTED when too many sessions are pending; NOT_FOUND for an unknown machine id.
   */
  Exec: grpc.handleUnaryCall<_iri_machine_v1alpha1_ExecRequest__Output, _iri_machine_v1alpha1_ExecResponse>;
  
  /**
   * Machines the runtime manages, with their labels (namespace and name among them).
   */
  ListMachines: grpc.handleUnaryCall<_iri_machine_v1alpha1_ListMachinesRequest__Output, _iri_machine_v1alpha1_ListMachinesResponse>;
  
}

export interface MachineRuntimeDefinition extends grpc.ServiceDefinition {
  Exec: MethodDefinition<_iri_machine_v1alpha1_ExecRequest, _iri_machine_v1alpha1_ExecResponse, _iri_machine_v1alpha1_ExecRequest__Output, _iri_machine_v1alpha1_ExecResponse__Output>
  ListMachines: MethodDefinition<_iri_machine_v1alpha1_ListMachinesRequest, _iri_machine_v1alpha1_ListMachinesResponse, _iri_machine_v1alpha1_ListMachinesRequest__Output, _iri_machine_v1alpha1_ListMachinesResponse__Output>
}
