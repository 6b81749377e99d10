// Errors and checks (STYLE.md §7): public functions check their inputs with WUSH_CHECK and a
// message naming the argument, value and rule; invariants use WUSH_ASSERT (always on).
// The CLI catches wush::Error once, prints one line and exits 1.
#pragma once
#include <cstdio>
#include <stdexcept>
#include <string>

namespace wush {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// printf-style formatting into a std::string.
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void throw_error(const std::string& msg);

}  // namespace wush

#define WUSH_CHECK(cond, ...)                                   \
  do {                                                          \
    if (!(cond)) ::wush::throw_error(::wush::strfmt(__VA_ARGS__)); \
  } while (0)

#define WUSH_FAIL(...) ::wush::throw_error(::wush::strfmt(__VA_ARGS__))

#define WUSH_ASSERT(cond)                                                              \
  do {                                                                                 \
    if (!(cond))                                                                       \
      ::wush::throw_error(::wush::strfmt("internal error: %s failed at %s:%d", #cond, \
                                         __FILE__, __LINE__));                         \
  } while (0)
