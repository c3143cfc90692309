// Original file: proto/iri/machine/v1alpha1/api.proto

import type { Machine as _iri_machine_v1alpha1_Machine, Machine__Output as _iri_machine_v1alpha1_Machine__Output } from '../../../iri/machine/v1alpha1/Machine.ts';

export interface ListMachinesResponse {
  'machines'?: (_iri_machine_v1alpha1_Machine)[];
}

export interface ListMachinesResponse__Output {
  'machines': (_iri_machine_v1alpha1_Machine__Output)[];
}
