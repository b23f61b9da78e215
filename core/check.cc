#include "core/check.h"

#include <stdio.h>
#include <stdlib.h>

namespace ringmx::core {

void CheckFailed(const char* file, int line, const char* condition) {
  fprintf(stderr, "ringmx: check failed at %s:%d: %s\n", file, line, condition);
  fflush(stderr);
  abort();
}

}  // namespace ringmx::core
