// Original file: proto/iri/machine/v1alpha1/api.proto


export interface MachineFilter {
  /**
   * only machines carrying all of these labels
   */
  'labelSelector'?: ({[key: string]: string});
}

export interface MachineFilter__Output {
  /**
   * only machines carrying all of these labels
   */
  'labelSelector': ({[key: string]: string});
}
