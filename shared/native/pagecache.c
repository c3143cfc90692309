/*
 * pagecache.node: one call Node lacks, flushing a file range and dropping it from the page cache
 * (sync_file_range + posix_fadvise(POSIX_FADV_DONTNEED)), run on the libuv pool.
 *
 *   dropBehind(fd, offset, length, callback(errorOrNull))
 *
 * Why: a job that prints gigabytes would otherwise fill the page cache with output nobody is
 * likely to read again, evicting what the host needs (the same reason `dd oflag=nocache` exists),
 * and every new page costs the writer. Dirty pages cannot be dropped, so the range is written out
 * and waited for first.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd;
  int64_t offset;
  int64_t length;
  int err;          /* errno of the failed step, 0 on success */
  const char *step; /* which call failed */
} drop_t;

static void execute(napi_env env, void *data) {
  drop_t *d = data;
  (void)env;
  if (sync_file_range(d->fd, d->offset, d->length,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
    d->err = errno;
    d->step = "sync_file_range";
    return;
  }
  /* posix_fadvise returns the error number instead of setting errno */
  int rc = posix_fadvise(d->fd, d->offset, d->length, POSIX_FADV_DONTNEED);
  if (rc != 0) {
    d->err = rc;
    d->step = "posix_fadvise";
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  drop_t *d = data;
  napi_value cb, global, arg, msg, code;
  char text[160];
  napi_get_reference_value(env, d->callback, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok) {
    snprintf(text, sizeof text, "dropping pages of fd %d: async work failed", d->fd);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &arg);
  } else if (d->err != 0) {
    snprintf(text, sizeof text, "dropping pages of fd %d: %s: %s", d->fd, d->step,
             strerror(d->err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, d->step, NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &arg);
  } else {
    napi_get_null(env, &arg);
  }
  napi_call_function(env, global, cb, 1, &arg, NULL);
  napi_delete_reference(env, d->callback);
  napi_delete_async_work(env, d->work);
  free(d);
}

static napi_value throw_type(napi_env env, const char *what) {
  napi_throw_type_error(env, NULL, what);
  return NULL;
}

static napi_value drop_behind(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  napi_valuetype t;
  int32_t fd;
  int64_t offset, length;
  drop_t *d;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4)
    return throw_type(env, "dropBehind(fd, offset, length, callback)");
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "dropBehind: fd must be a file descriptor");
  if (napi_get_value_int64(env, argv[1], &offset) != napi_ok || offset < 0)
    return throw_type(env, "dropBehind: offset must be a non-negative integer");
  if (napi_get_value_int64(env, argv[2], &length) != napi_ok || length < 0)
    return throw_type(env, "dropBehind: length must be a non-negative integer");
  if (napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function)
    return throw_type(env, "dropBehind: callback must be a function");
  d = calloc(1, sizeof *d);
  if (d == NULL) {
    napi_throw_error(env, NULL, "dropBehind: out of memory");
    return NULL;
  }
  d->fd = fd;
  d->offset = offset;
  d->length = length;
  napi_create_reference(env, argv[3], 1, &d->callback);
  napi_create_string_utf8(env, "hostplane.dropBehind", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, d, &d->work);
  napi_queue_async_work(env, d->work);
  return NULL;
}

NAPI_MODULE_INIT(/* env, exports */) {
  napi_value fn;
  napi_create_function(env, "dropBehind", NAPI_AUTO_LENGTH, drop_behind, NULL, &fn);
  napi_set_named_property(env, exports, "dropBehind", fn);
  return exports;
}
