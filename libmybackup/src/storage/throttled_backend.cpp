#include "mybackup/storage/throttled_backend.hpp"

#include <mutex>
#include <thread>

#include "mybackup/storage/forwarding_backend.hpp"

namespace mybackup {

namespace {

class ThrottledBackend final : public ForwardingBackend {
 public:
  ThrottledBackend(std::unique_ptr<Backend> inner, std::uint64_t bytes_per_second,
                   std::function<void(std::chrono::nanoseconds)> sleep, std::function<std::chrono::nanoseconds()> now)
      : ForwardingBackend(std::move(inner)), rate_(static_cast<double>(bytes_per_second)), sleep_(std::move(sleep)), now_(std::move(now)) {
    if (!sleep_) {
      sleep_ = [](std::chrono::nanoseconds delay) { std::this_thread::sleep_for(delay); };
    }
    if (!now_) {
      now_ = [] { return std::chrono::steady_clock::now().time_since_epoch(); };
    }
    last_ = now_();
    tokens_ = rate_;  // one second's worth to start with
  }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    sleep_(reserve(data.size()));
    ForwardingBackend::put(name, data, overwrite);
  }

 private:
  /// Takes `bytes` from the bucket; returns how long to wait before sending them.
  std::chrono::nanoseconds reserve(std::uint64_t bytes) {
    const std::lock_guard lock(mutex_);
    const std::chrono::nanoseconds current = now_();
    const double elapsed = std::chrono::duration<double>(current - last_).count();
    last_ = current;
    tokens_ = std::min(rate_, tokens_ + elapsed * rate_);  // at most one second of burst
    tokens_ -= static_cast<double>(bytes);
    if (tokens_ >= 0) {
      return std::chrono::nanoseconds(0);
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(-tokens_ / rate_ * 1e9));
  }

  double rate_;
  std::function<void(std::chrono::nanoseconds)> sleep_;
  std::function<std::chrono::nanoseconds()> now_;
  std::mutex mutex_;
  std::chrono::nanoseconds last_{0};
  double tokens_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_throttled_backend(std::unique_ptr<Backend> inner, std::uint64_t bytes_per_second,
                                                std::function<void(std::chrono::nanoseconds)> sleep,
                                                std::function<std::chrono::nanoseconds()> now) {
  return std::make_unique<ThrottledBackend>(std::move(inner), bytes_per_second, std::move(sleep), std::move(now));
}

}  // namespace mybackup
