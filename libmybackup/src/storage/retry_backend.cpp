#include "mybackup/storage/retry_backend.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

class RetryingBackend final : public Backend {
 public:
  RetryingBackend(std::unique_ptr<Backend> inner, RetryPolicy policy) : inner_(std::move(inner)), policy_(std::move(policy)) {
    if (policy_.attempts < 1) {
      throw std::invalid_argument("RetryPolicy.attempts must be at least 1");
    }
  }

  std::string location() const override { return inner_->location(); }

  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    put_retried(name, [&] { inner_->put(name, data, overwrite); }, [&] { return Bytes(data.begin(), data.end()); });
  }

  void put_file(const std::string& name, int fd, std::uint64_t size, Overwrite overwrite) override {
    put_retried(name, [&] { inner_->put_file(name, fd, size, overwrite); }, [&] { return read_file_range(fd, size, name); });
  }

  Bytes get(const std::string& name, std::uint64_t max_size) const override {
    return retry([&] { return inner_->get(name, max_size); });
  }

  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    return retry([&] { return inner_->get_range(name, offset, length); });
  }

  std::optional<std::uint64_t> size(const std::string& name) const override {
    return retry([&] { return inner_->size(name); });
  }

  std::vector<ObjectInfo> list(const std::string& prefix) const override {
    return retry([&] { return inner_->list(prefix); });
  }

  bool empty() const override {
    return retry([&] { return inner_->empty(); });
  }

  void remove(const std::string& name) override {
    retry([&] { inner_->remove(name); });
  }

 private:
  /// Runs `attempt` with retries. A create that says "exists" after a transient failure is our own
  /// earlier attempt that got through (only its answer was lost) when the object holds `content()`.
  template <typename Attempt, typename Content>
  void put_retried(const std::string& name, Attempt&& attempt, Content&& content) {
    bool failed_transiently = false;
    retry([&] {
      try {
        attempt();
      } catch (const Error& error) {
        if (error.kind() == ErrorKind::transient) {
          failed_transiently = true;
        } else if (error.kind() == ErrorKind::exists && failed_transiently && holds(name, content())) {
          return;
        }
        throw;
      }
    });
  }

  bool holds(const std::string& name, ByteView data) const {
    try {
      const Bytes stored = inner_->get(name, data.size());
      return std::equal(stored.begin(), stored.end(), data.begin(), data.end());
    } catch (const Error&) {
      return false;
    }
  }

  template <typename Fn>
  auto retry(Fn&& fn) const -> decltype(fn()) {
    std::chrono::milliseconds delay = policy_.first_delay;
    for (int attempt = 1;; ++attempt) {
      try {
        return fn();
      } catch (const Error& error) {
        if (error.kind() != ErrorKind::transient || attempt >= policy_.attempts) {
          throw;
        }
      }
      if (policy_.sleep) {
        policy_.sleep(delay);
      } else {
        std::this_thread::sleep_for(delay);
      }
      delay = std::min(delay * 2, policy_.max_delay);
    }
  }

  std::unique_ptr<Backend> inner_;
  RetryPolicy policy_;
};

}  // namespace

std::unique_ptr<Backend> make_retrying_backend(std::unique_ptr<Backend> inner, RetryPolicy policy) {
  return std::make_unique<RetryingBackend>(std::move(inner), std::move(policy));
}

}  // namespace mybackup
