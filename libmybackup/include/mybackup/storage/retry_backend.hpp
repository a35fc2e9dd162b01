#pragma once
// A Backend decorator that tries again when the storage says "try again".
//
// Only Error(transient) is retried (timeouts, resets, throttling), with a bounded exponential
// back-off; every other kind (missing, damaged, denied, full, exists…) is thrown at once, since
// asking again cannot change the answer. After the last attempt the transient error is thrown.
//
// A create-if-absent put() whose first attempt failed transiently may have stored the object
// anyway (the reply was lost, not the request): when a later attempt finds the name taken, the
// stored object is read back and, if it holds exactly our bytes, the put counts as done.
//
// Thread safety: as the wrapped backend (this adds no shared state).

#include <chrono>
#include <functional>
#include <memory>

#include "mybackup/storage/backend.hpp"

namespace mybackup {

struct RetryPolicy {
  int attempts = 5;                                   // in all, the first one included (>= 1)
  std::chrono::milliseconds first_delay{200};         // before the second attempt
  std::chrono::milliseconds max_delay{10'000};        // each delay doubles up to this
  /// How to wait; tests pass one that records the delays instead of sleeping.
  std::function<void(std::chrono::milliseconds)> sleep;  // empty: std::this_thread::sleep_for
};

/// Wraps `inner` (owned). REQUIRES: policy.attempts >= 1.
std::unique_ptr<Backend> make_retrying_backend(std::unique_ptr<Backend> inner, RetryPolicy policy = {});

}  // namespace mybackup
