// The retry decorator: transient failures are retried with a bounded back-off, nothing else is.

#include "mybackup/storage/retry_backend.hpp"

#include <gtest/gtest.h>

#include "fault_backend.hpp"
#include "mybackup/storage/forwarding_backend.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using Faults = testing::FaultInjectingBackend;
using Op = Faults::Op;

struct Fixture {
  testing::TempDir dir;
  Faults* faults = nullptr;
  std::vector<std::chrono::milliseconds> delays;
  std::unique_ptr<Backend> backend;

  explicit Fixture(int attempts = 5) {
    auto owned = std::make_unique<Faults>(make_local_backend(dir / "store"));
    faults = owned.get();
    RetryPolicy policy;
    policy.attempts = attempts;
    policy.first_delay = std::chrono::milliseconds(100);
    policy.max_delay = std::chrono::milliseconds(300);
    policy.sleep = [this](std::chrono::milliseconds delay) { delays.push_back(delay); };
    backend = make_retrying_backend(std::move(owned), policy);
  }
};

TEST(RetryBackend, TransientFailuresAreRetriedWithADoublingCappedBackOff) {
  Fixture f;
  f.faults->fail(Op::list, 1, 3, ErrorKind::transient);
  f.faults->inner().put("data/ab/x.enc", as_bytes("x"), Overwrite::no);
  EXPECT_EQ(f.backend->list("data").size(), 1U);
  EXPECT_EQ(f.faults->calls(Op::list), 4);
  EXPECT_EQ(f.delays, (std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(100), std::chrono::milliseconds(200),
                                                              std::chrono::milliseconds(300)}));
}

TEST(RetryBackend, GivesUpAfterTheLastAttemptWithTheTransientError) {
  Fixture f(3);
  f.faults->fail(Op::get, 1, std::nullopt, ErrorKind::transient);
  EXPECT_EQ(testing::error_kind([&] { f.backend->get("data/ab/x.enc", 10); }), ErrorKind::transient);
  EXPECT_EQ(f.faults->calls(Op::get), 3);
  EXPECT_EQ(f.delays.size(), 2U);
}

TEST(RetryBackend, MissingDamagedDeniedAndFullAreNeverRetried) {
  for (const ErrorKind kind : {ErrorKind::not_found, ErrorKind::corrupt, ErrorKind::denied, ErrorKind::no_space, ErrorKind::io}) {
    Fixture f;
    f.faults->fail(Op::get_range, 1, std::nullopt, kind);
    EXPECT_EQ(testing::error_kind([&] { f.backend->get_range("data/ab/x.enc", 0, 1); }), kind);
    EXPECT_EQ(f.faults->calls(Op::get_range), 1) << to_string(kind);
    EXPECT_TRUE(f.delays.empty());
  }
  Fixture f;
  EXPECT_EQ(testing::error_kind([&] { f.backend->get("data/ab/missing.enc", 10); }), ErrorKind::not_found);
  EXPECT_TRUE(f.delays.empty());
}

/// A backend whose put stores the object and then reports a timeout (the reply was lost).
class LostReplyBackend final : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  void put(const std::string& name, ByteView data, Overwrite overwrite) override {
    ForwardingBackend::put(name, data, overwrite);
    if (!lost_once_) {
      lost_once_ = true;
      throw Error(ErrorKind::transient, "timed out waiting for the reply");
    }
  }

 private:
  bool lost_once_ = false;
};

TEST(RetryBackend, ACreateWhoseReplyWasLostCountsAsDoneWhenTheStoredBytesAreOurs) {
  testing::TempDir dir;
  RetryPolicy policy;
  policy.sleep = [](std::chrono::milliseconds) {};
  const auto backend = make_retrying_backend(std::make_unique<LostReplyBackend>(make_local_backend(dir / "store")), policy);
  backend->put("snapshots/0000000001-aa.enc", as_bytes("ours"), Overwrite::no);
  EXPECT_EQ(as_text(backend->get("snapshots/0000000001-aa.enc", 10)), "ours");
}

TEST(RetryBackend, ACreateThatFindsSomeoneElsesObjectAfterATimeoutIsExists) {
  testing::TempDir dir;
  auto inner = make_local_backend(dir / "store");
  inner->put("locks/0123456789abcdef.json", as_bytes("theirs"), Overwrite::no);
  auto owned = std::make_unique<Faults>(std::move(inner));
  Faults* faults = owned.get();
  faults->fail(Op::put, 1, 1, ErrorKind::transient);
  RetryPolicy policy;
  policy.sleep = [](std::chrono::milliseconds) {};
  const auto backend = make_retrying_backend(std::move(owned), policy);
  EXPECT_EQ(testing::error_kind([&] { backend->put("locks/0123456789abcdef.json", as_bytes("ours"), Overwrite::no); }),
            ErrorKind::exists);
  EXPECT_EQ(as_text(backend->get("locks/0123456789abcdef.json", 10)), "theirs");
}

}  // namespace
}  // namespace mybackup
