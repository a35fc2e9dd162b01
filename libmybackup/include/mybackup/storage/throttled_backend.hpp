#pragma once
// A Backend decorator that keeps uploads under a bandwidth limit (config.yaml's
// transfer.upload_limit), whatever the backend: put() waits until the bytes it is about to send
// fit the budget of a token bucket refilled at `bytes_per_second`, shared by every thread. The
// budget may go into debt by one object, so a limit below the size of one pack still lets every
// pack through, one per (size / limit) seconds on average. Reads are not limited.
//
// Thread-safe: the bucket is guarded by a mutex; waiting happens outside it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "mybackup/storage/backend.hpp"

namespace mybackup {

/// Wraps `inner` (owned). REQUIRES: bytes_per_second > 0. `sleep` is for tests (empty: really
/// sleep), `now` too (empty: the steady clock).
std::unique_ptr<Backend> make_throttled_backend(std::unique_ptr<Backend> inner, std::uint64_t bytes_per_second,
                                                std::function<void(std::chrono::nanoseconds)> sleep = {},
                                                std::function<std::chrono::nanoseconds()> now = {});

}  // namespace mybackup
