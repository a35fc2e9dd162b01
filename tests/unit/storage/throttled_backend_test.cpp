// The upload bandwidth limit (storage/throttled_backend.hpp), with a fake clock: how long put()
// waits, shared by threads, and reads never wait.

#include "mybackup/storage/throttled_backend.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace mybackup::testing {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

class Throttled : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> make(std::uint64_t rate) {
    return make_throttled_backend(
        make_local_backend(dir_ / "store"), rate,
        [this](nanoseconds delay) {
          waits_.push_back(delay);
          now_ += delay;  // the waiting thread's time passes
        },
        [this] { return now_; });
  }

  TempDir dir_;
  nanoseconds now_{0};
  std::vector<nanoseconds> waits_;
};

TEST_F(Throttled, UploadsWaitUntilTheyFitTheRate) {
  const auto backend = make(1000);  // 1000 bytes per second
  backend->put("data/aa/1", random_data(1000, 1), Overwrite::no);  // the first second's budget
  backend->put("data/aa/2", random_data(500, 2), Overwrite::no);   // half a second more
  backend->put("data/aa/3", random_data(3000, 3), Overwrite::no);  // larger than a second's budget: in debt
  ASSERT_EQ(waits_.size(), 3U);
  EXPECT_EQ(waits_[0], nanoseconds(0));
  EXPECT_EQ(waits_[1], std::chrono::milliseconds(500));
  EXPECT_EQ(waits_[2], seconds(3));
  now_ += seconds(10);  // idle: the budget refills, up to one second's worth
  backend->put("data/aa/4", random_data(1000, 4), Overwrite::no);
  EXPECT_EQ(waits_.back(), nanoseconds(0));
  backend->put("data/aa/5", random_data(1, 5), Overwrite::no);
  EXPECT_EQ(waits_.back(), std::chrono::milliseconds(1));
}

TEST_F(Throttled, ReadsAndTheContractAreUntouched) {
  const auto backend = make(10);
  const Bytes data = random_data(100, 7);
  backend->put("data/aa/x", data, Overwrite::no);
  const std::size_t waits = waits_.size();
  EXPECT_EQ(backend->get("data/aa/x", 100), data);
  EXPECT_EQ(backend->get_range("data/aa/x", 10, 5), Bytes(data.begin() + 10, data.begin() + 15));
  EXPECT_EQ(backend->list("data").size(), 1U);
  EXPECT_EQ(waits_.size(), waits) << "reads never wait";
  EXPECT_EQ(error_kind([&] { backend->put("data/aa/x", data, Overwrite::no); }), ErrorKind::exists);
}

}  // namespace
}  // namespace mybackup::testing
