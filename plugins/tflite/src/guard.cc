// Runs one call into LiteRT and catches any C++ exception it throws.
//
// LiteRT's C API is implemented in C++ and does not catch everything: a damaged model can
// make a call throw (std::logic_error from a null name, std::bad_alloc from a huge shape).
// An exception that reached Rust code would abort the process (Rust cannot catch foreign
// exceptions), so every call into LiteRT goes through this frame instead: the exception
// stops here and becomes an error.
//
// `body` is a Rust function with the "C-unwind" ABI that makes the call; it never panics
// (it only calls the LiteRT function and stores the result), so no Rust panic ever crosses
// this frame.

#include <cstddef>
#include <cstring>
#include <exception>

extern "C" {

typedef void (*redisai_tflite_body)(void* context);

// Returns 0 when `body` returned, 1 when it threw; then `message` (of `capacity` bytes,
// capacity > 0) holds the exception's text, NUL-terminated and cut to fit.
int redisai_tflite_guard(redisai_tflite_body body, void* context, char* message,
                         size_t capacity) {
  const char* what = nullptr;
  try {
    body(context);
    return 0;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  if (what == nullptr) what = "";
  size_t n = std::strlen(what);
  if (n >= capacity) n = capacity - 1;
  std::memcpy(message, what, n);
  message[n] = '\0';
  return 1;
}

}  // extern "C"
