// Original file: proto/iri/machine/v1alpha1/api.proto


export interface ExecRequest {
  'machineId'?: (string);
  /**
   * the session wants a terminal (PTY) rather than plain pipes
   */
  'tty'?: (boolean);
}

export interface ExecRequest__Output {
  'machineId': (string);
  /**
   * the session wants a terminal (PTY) rather than plain pipes
   */
  'tty': (boolean);
}
