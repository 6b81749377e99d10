#include "core/error.h"

#include <cstdarg>

namespace wush {

std::string strfmt(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(n > 0 ? n : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), n + 1, fmt, ap2);
  va_end(ap2);
  return out;
}

void throw_error(const std::string& msg) { throw Error(msg); }

}  // namespace wush
