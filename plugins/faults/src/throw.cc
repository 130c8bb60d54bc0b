// A C++ "runtime" that throws on every call, wrapped the way a backend must wrap one:
// the exception is caught in this frame and becomes an error code and message, so no
// C++ exception ever unwinds into Rust or into Redis.
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

namespace {
void runtime_call(int depth) {
    if (depth == 0) {
        throw std::runtime_error("faults: the C++ runtime threw std::runtime_error");
    }
    runtime_call(depth - 1);
}
}  // namespace

extern "C" int redisai_faults_cpp_call(char* message, size_t capacity) {
    try {
        runtime_call(8);
        return 0;
    } catch (const std::exception& err) {
        std::strncpy(message, err.what(), capacity - 1);
        message[capacity - 1] = '\0';
        return 1;
    } catch (...) {
        std::strncpy(message, "faults: unknown C++ exception", capacity - 1);
        message[capacity - 1] = '\0';
        return 2;
    }
}
