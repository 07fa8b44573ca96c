/*===- moert.h - The moec runtime C API ---------------------------*- C -*-===*
 *
 * The C API of the moec runtime. It depends on neither MLIR nor LLVM and is
 * usable from C and C++. Errors are values: every call that can fail
 * returns a moert_status, NULL on success, which the caller frees.
 *
 * This header grows with the runtime (artifact loading, sessions, KV cache
 * ownership); what is here is the error and version contract every later
 * entry point uses.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_MOERT_H
#define MOE_RUNTIME_MOERT_H

#ifdef __cplusplus
extern "C" {
#endif

#define MOERT_VERSION_MAJOR 0
#define MOERT_VERSION_MINOR 1

typedef enum moert_status_code {
  MOERT_OK = 0,
  MOERT_INVALID_ARGUMENT = 1,
  MOERT_NOT_FOUND = 2,
  MOERT_IO_ERROR = 3,
  MOERT_FORMAT_ERROR = 4,
  MOERT_UNIMPLEMENTED = 5,
  MOERT_OUT_OF_MEMORY = 6,
  MOERT_INTERNAL = 7,
} moert_status_code;

/* An error: a code and a one-line message. NULL means success. */
typedef struct moert_status_s *moert_status;

/* Creates an error with a printf-style message. Returns NULL for MOERT_OK. */
moert_status moert_status_make(moert_status_code code, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The code of `status`; MOERT_OK for NULL. */
moert_status_code moert_status_get_code(moert_status status);

/* The message of `status`, valid until it is freed; "" for NULL. */
const char *moert_status_message(moert_status status);

/* The name of a code, such as "not found". */
const char *moert_status_code_name(moert_status_code code);

/* Frees `status`; NULL is allowed. */
void moert_status_free(moert_status status);

/* "MAJOR.MINOR" of the runtime that was linked. */
const char *moert_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_MOERT_H */
