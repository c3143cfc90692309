import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { ExecRequest as _iri_machine_v1alpha1_ExecRequest, ExecRequest__Output as _iri_machine_v1alpha1_ExecRequest__Output } from './iri/machine/v1alpha1/ExecRequest.ts';
import type { ExecResponse as _iri_machine_v1alpha1_ExecResponse, ExecResponse__Output as _iri_machine_v1alpha1_ExecResponse__Output } from './iri/machine/v1alpha1/ExecResponse.ts';
import type { ListMachinesRequest as _iri_machine_v1alpha1_ListMachinesRequest, ListMachinesRequest__Output as _iri_machine_v1alpha1_ListMachinesRequest__Output } from './iri/machine/v1alpha1/ListMachinesRequest.ts';
import type { ListMachinesResponse as _iri_machine_v1alpha1_ListMachinesResponse, ListMachinesResponse__Output as _iri_machine_v1alpha1_ListMachinesResponse__Output } from './iri/machine/v1alpha1/ListMachinesResponse.ts';
import type { Machine as _iri_machine_v1alpha1_Machine, Machine__Output as _iri_machine_v1alpha1_Machine__Output } from './iri/machine/v1alpha1/Machine.ts';
import type { MachineFilter as _iri_machine_v1alpha1_MachineFilter, MachineFilter__Output as _iri_machine_v1alpha1_MachineFilter__Output } from './iri/machine/v1alpha1/MachineFilter.ts';
import type { MachineRuntimeClient as _iri_machine_v1alpha1_MachineRuntimeClient, MachineRuntimeDefinition as _iri_machine_v1alpha1_MachineRuntimeDefinition } from './iri/machine/v1alpha1/MachineRuntime.ts';
import type { ObjectMetadata as _iri_machine_v1alpha1_ObjectMetadata, ObjectMetadata__Output as _iri_machine_v1alpha1_ObjectMetadata__Output } from './iri/machine/v1alpha1/ObjectMetadata.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  iri: {
    machine: {
      v1alpha1: {
        ExecRequest: MessageTypeDefinition<_iri_machine_v1alpha1_ExecRequest, _iri_machine_v1alpha1_ExecRequest__Output>
        ExecResponse: MessageTypeDefinition<_iri_machine_v1alpha1_ExecResponse, _iri_machine_v1alpha1_ExecResponse__Output>
        ListMachinesRequest: MessageTypeDefinition<_iri_machine_v1alpha1_ListMachinesRequest, _iri_machine_v1alpha1_ListMachinesRequest__Output>
        ListMachinesResponse: MessageTypeDefinition<_iri_machine_v1alpha1_ListMachinesResponse, _iri_machine_v1alpha1_ListMachinesResponse__Output>
        Machine: MessageTypeDefinition<_iri_machine_v1alpha1_Machine, _iri_machine_v1alpha1_Machine__Output>
        MachineFilter: MessageTypeDefinition<_iri_machine_v1alpha1_MachineFilter, _iri_machine_v1alpha1_MachineFilter__Output>
        MachineRuntime: SubtypeConstructor<typeof grpc.Client, _iri_machine_v1alpha1_MachineRuntimeClient> & { service: _iri_machine_v1alpha1_MachineRuntimeDefinition }
        ObjectMetadata: MessageTypeDefinition<_iri_machine_v1alpha1_ObjectMetadata, _iri_machine_v1alpha1_ObjectMetadata__Output>
      }
    }
  }
}

