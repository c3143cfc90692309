// Original file: proto/iri/machine/v1alpha1/api.proto


export interface ObjectMetadata {
  'id'?: (string);
  'labels'?: ({[key: string]: string});
}

export interface ObjectMetadata__Output {
  'id': (string);
  'labels': ({[key: string]: string});
}
