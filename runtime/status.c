/*===- status.c - Errors as values ----------------------------------------===*/

#include "moe/Runtime/moert.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct moert_status_s {
  moert_status_code code;
  char message[];
};

/* Returned when the error itself cannot be allocated. */
static struct {
  moert_status_code code;
  char message[32];
} out_of_memory = {MOERT_OUT_OF_MEMORY, "out of memory"};

moert_status moert_status_make(moert_status_code code, const char *format,
                               ...) {
  if (code == MOERT_OK)
    return NULL;
  va_list args;
  va_start(args, format);
  int length = vsnprintf(NULL, 0, format, args);
  va_end(args);
  if (length < 0)
    length = 0;
  moert_status status = malloc(sizeof(*status) + (size_t)length + 1);
  if (!status)
    return (moert_status)&out_of_memory;
  status->code = code;
  va_start(args, format);
  vsnprintf(status->message, (size_t)length + 1, format, args);
  va_end(args);
  return status;
}

moert_status_code moert_status_get_code(moert_status status) {
  return status ? status->code : MOERT_OK;
}

const char *moert_status_message(moert_status status) {
  return status ? status->message : "";
}

const char *moert_status_code_name(moert_status_code code) {
  switch (code) {
  case MOERT_OK: return "ok";
  case MOERT_INVALID_ARGUMENT: return "invalid argument";
  case MOERT_NOT_FOUND: return "not found";
  case MOERT_IO_ERROR: return "I/O error";
  case MOERT_FORMAT_ERROR: return "format error";
  case MOERT_UNIMPLEMENTED: return "unimplemented";
  case MOERT_OUT_OF_MEMORY: return "out of memory";
  case MOERT_INTERNAL: return "internal error";
  }
  return "unknown";
}

void moert_status_free(moert_status status) {
  if (status && status != (moert_status)&out_of_memory)
    free(status);
}

#define MOERT_STR2(x) #x
#define MOERT_STR(x) MOERT_STR2(x)
const char *moert_version(void) {
  return MOERT_STR(MOERT_VERSION_MAJOR) "." MOERT_STR(MOERT_VERSION_MINOR);
}
