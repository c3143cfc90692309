// Original file: proto/iri/machine/v1alpha1/api.proto

import type { ObjectMetadata as _iri_machine_v1alpha1_ObjectMetadata, ObjectMetadata__Output as _iri_machine_v1alpha1_ObjectMetadata__Output } from '../../../iri/machine/v1alpha1/ObjectMetadata.ts';

export interface Machine {
  'metadata'?: (_iri_machine_v1alpha1_ObjectMetadata | null);
}

export interface Machine__Output {
  'metadata': (_iri_machine_v1alpha1_ObjectMetadata__Output | null);
}
