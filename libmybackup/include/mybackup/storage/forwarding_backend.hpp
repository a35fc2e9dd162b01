#pragma once
// The base of Backend decorators that change only some calls: every method forwards to the
// wrapped backend (owned); a decorator overrides what it changes (the throttle, put()).
// Thread safety: as the wrapped backend.

#include <memory>
#include <utility>

#include "mybackup/storage/backend.hpp"

namespace mybackup {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string location() const override { return inner_->location(); }
  void put(const std::string& name, ByteView data, Overwrite overwrite) override { inner_->put(name, data, overwrite); }
  Bytes get(const std::string& name, std::uint64_t max_size) const override { return inner_->get(name, max_size); }
  Bytes get_range(const std::string& name, std::uint64_t offset, std::uint64_t length) const override {
    return inner_->get_range(name, offset, length);
  }
  std::optional<std::uint64_t> size(const std::string& name) const override { return inner_->size(name); }
  std::vector<ObjectInfo> list(const std::string& prefix) const override { return inner_->list(prefix); }
  bool empty() const override { return inner_->empty(); }
  void remove(const std::string& name) override { inner_->remove(name); }

 protected:
  Backend& inner() const { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace mybackup
