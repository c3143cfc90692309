// Original file: proto/iri/machine/v1alpha1/api.proto

import type { MachineFilter as _iri_machine_v1alpha1_MachineFilter, MachineFilter__Output as _iri_machine_v1alpha1_MachineFilter__Output } from '../../../iri/machine/v1alpha1/MachineFilter.ts';

export interface ListMachinesRequest {
  'filter'?: (_iri_machine_v1alpha1_MachineFilter | null);
}

export interface ListMachinesRequest__Output {
  'filter': (_iri_machine_v1alpha1_MachineFilter__Output | null);
}
