// Original file: proto/jobexec/v1/jobexec.proto


/**
 * The per-job output cap was reached: nothing after this point was kept.
 */
export interface OutputTruncated {
}

/**
 * The per-job output cap was reached: nothing after this point was kept.
 */
export interface OutputTruncated__Output {
}
