// Original file: proto/jobexec/v1/jobexec.proto


export interface ListAllExecutionsRequest {
  /**
   * entries per page; absent or 0 takes the server's default (100), above the maximum (1000)
   * is lowered to it.
   */
  'pageSize'?: (number);
  /**
   * next_page_token of the previous page; empty for the first page. Opaque.
   */
  'pageToken'?: (string);
  '_pageSize'?: "pageSize";
}

export interface ListAllExecutionsRequest__Output {
  /**
   * entries per page; absent or 0 takes the server's default (100), above the maximum (1000)
   * is lowered to it.
   */
  'pageSize'?: (number);
  /**
   * next_page_token of the previous page; empty for the first page. Opaque.
   */
  'pageToken': (string);
  '_pageSize'?: "pageSize";
}
