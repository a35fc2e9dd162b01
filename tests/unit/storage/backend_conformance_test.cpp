// The Backend conformance suite (backend_conformance.hpp) and the backends that run it.

#include "storage/backend_conformance.hpp"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include <unistd.h>

#include "common/s3_test_server.hpp"
#include "fault_backend.hpp"
#include "mybackup/storage/registry.hpp"
#include "mybackup/storage/retry_backend.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "servers/sshd_server.hpp"
#include "test_util.hpp"

namespace mybackup::testing {
namespace {

template <typename Fn>
ErrorOutcome kind_of(Fn fn) {
  return error_kind(fn);
}

class Conformance : public BackendConformance {
 protected:
  void SetUp() override { backend_ = GetParam().make(scratch_.path()); }

  TempDir scratch_;
  std::unique_ptr<Backend> backend_;
};

TEST_P(Conformance, NewStoreIsEmptyAndListsNothing) {
  EXPECT_TRUE(backend_->empty());
  EXPECT_TRUE(backend_->list("").empty());
  EXPECT_TRUE(backend_->list("data").empty());
  EXPECT_FALSE(backend_->size("data/ab/x.enc").has_value());
}

TEST_P(Conformance, PutThenGetReturnsTheSameBytes) {
  const Bytes data = random_data(100'000, 1);
  backend_->put("data/ab/object.enc", data, Overwrite::no);
  EXPECT_EQ(backend_->get("data/ab/object.enc", data.size()), data);
  EXPECT_EQ(backend_->size("data/ab/object.enc"), data.size());
  EXPECT_FALSE(backend_->empty());
}

// Issue 13: a manifest of millions of files is stored from a file, never held in memory.
TEST_P(Conformance, PutFileStoresTheFilesBytesAndRefusesATakenName) {
  const Bytes data = random_data(3 * 1024 * 1024 + 5, 4);  // several of the local copy's pieces
  const int fd = open_unnamed_file(scratch_.path());
  ASSERT_GE(fd, 0);
  write_all(fd, data, "test file");
  backend_->put_file("snapshots/big.enc", fd, data.size(), Overwrite::no);
  EXPECT_EQ(backend_->get("snapshots/big.enc", data.size()), data);
  EXPECT_EQ(testing::error_kind([&] { backend_->put_file("snapshots/big.enc", fd, 10, Overwrite::no); }), ErrorKind::exists);
  backend_->put_file("snapshots/big.enc", fd, 10, Overwrite::yes);  // only the first bytes asked for
  EXPECT_EQ(backend_->get("snapshots/big.enc", 10), Bytes(data.begin(), data.begin() + 10));
  // A file shorter than announced stores nothing.
  EXPECT_EQ(testing::error_kind([&] { backend_->put_file("snapshots/short.enc", fd, data.size() + 1, Overwrite::no); }),
            ErrorKind::io);
  EXPECT_FALSE(backend_->size("snapshots/short.enc").has_value());
  ::close(fd);
}

TEST_P(Conformance, EmptyObjectsAreObjects) {
  backend_->put("snapshots/empty", {}, Overwrite::no);
  EXPECT_EQ(backend_->size("snapshots/empty"), 0U);
  EXPECT_TRUE(backend_->get("snapshots/empty", 0).empty());
  ASSERT_EQ(backend_->list("snapshots").size(), 1U);
  EXPECT_EQ(backend_->list("snapshots")[0], (ObjectInfo{"snapshots/empty", 0}));
}

TEST_P(Conformance, GetOverTheSizeBoundIsCorruptAndAtTheBoundIsFine) {
  const Bytes data = random_data(4096, 2);
  backend_->put("locks/a.json", data, Overwrite::no);
  EXPECT_EQ(kind_of([&] { backend_->get("locks/a.json", data.size() - 1); }), ErrorKind::corrupt);
  EXPECT_EQ(backend_->get("locks/a.json", data.size()), data);
}

TEST_P(Conformance, MissingObjectsAreNotFound) {
  EXPECT_EQ(kind_of([&] { backend_->get("data/00/missing.enc", 1 << 20); }), ErrorKind::not_found);
  EXPECT_EQ(kind_of([&] { backend_->get_range("data/00/missing.enc", 0, 1); }), ErrorKind::not_found);
  EXPECT_FALSE(backend_->size("data/00/missing.enc").has_value());
  backend_->remove("data/00/missing.enc");  // not an error
}

TEST_P(Conformance, RangedReadsAtTheEdges) {
  const Bytes data = random_data(10'000, 3);
  backend_->put("data/cd/range.enc", data, Overwrite::no);
  const auto slice = [&](std::size_t offset, std::size_t length) {
    return Bytes(data.begin() + static_cast<std::ptrdiff_t>(offset),
                 data.begin() + static_cast<std::ptrdiff_t>(offset + length));
  };
  EXPECT_EQ(backend_->get_range("data/cd/range.enc", 0, 1), slice(0, 1));
  EXPECT_EQ(backend_->get_range("data/cd/range.enc", 9'999, 1), slice(9'999, 1));
  EXPECT_EQ(backend_->get_range("data/cd/range.enc", 0, 10'000), data);
  EXPECT_EQ(backend_->get_range("data/cd/range.enc", 1234, 5678), slice(1234, 5678));
  EXPECT_TRUE(backend_->get_range("data/cd/range.enc", 10'000, 0).empty());
  EXPECT_EQ(kind_of([&] { backend_->get_range("data/cd/range.enc", 9'999, 2); }), ErrorKind::corrupt);
  EXPECT_EQ(kind_of([&] { backend_->get_range("data/cd/range.enc", 10'001, 0); }), ErrorKind::corrupt);
  EXPECT_EQ(kind_of([&] { backend_->get_range("data/cd/range.enc", 0, std::uint64_t{1} << 40); }), ErrorKind::corrupt);
}

TEST_P(Conformance, CreateIfAbsentRefusesATakenNameAndKeepsTheObject) {
  backend_->put("keys/k.json", as_bytes("first"), Overwrite::no);
  EXPECT_EQ(kind_of([&] { backend_->put("keys/k.json", as_bytes("second"), Overwrite::no); }), ErrorKind::exists);
  EXPECT_EQ(as_text(backend_->get("keys/k.json", 100)), "first");
  backend_->put("keys/k.json", as_bytes("third"), Overwrite::yes);
  EXPECT_EQ(as_text(backend_->get("keys/k.json", 100)), "third");
}

TEST_P(Conformance, CreateIfAbsentRaceHasExactlyOneWinner) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 5; ++round) {
    const std::string name = "locks/race" + std::to_string(round) + ".json";
    std::atomic<int> winners{0};
    std::atomic<int> losers{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) {
          std::this_thread::yield();
        }
        try {
          backend_->put(name, as_bytes("writer " + std::to_string(t)), Overwrite::no);
          ++winners;
        } catch (const Error& error) {
          if (error.kind() == ErrorKind::exists) {
            ++losers;
          }
        }
      });
    }
    go = true;
    for (std::thread& thread : threads) {
      thread.join();
    }
    if (GetParam().atomic_create) {
      EXPECT_EQ(winners.load(), 1) << "round " << round;
      EXPECT_EQ(losers.load(), kThreads - 1) << "round " << round;
    } else {
      EXPECT_GE(winners.load(), 1) << "round " << round;
      EXPECT_EQ(winners.load() + losers.load(), kThreads) << "round " << round;
    }
    EXPECT_EQ(as_text(backend_->get(name, 100)).rfind("writer ", 0), 0U);
  }
}

TEST_P(Conformance, ConcurrentPutsAndRangedReadsFromSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kObjects = 25;
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kObjects; ++i) {
        const std::string name = "data/" + std::to_string(10 + t) + "/obj" + std::to_string(i) + ".enc";
        const Bytes data = random_data(static_cast<std::size_t>(1000 + 37 * i), static_cast<std::uint64_t>(t * 1000 + i));
        backend_->put(name, data, Overwrite::no);
        const Bytes back = backend_->get_range(name, 10, 500);
        if (!std::equal(back.begin(), back.end(), data.begin() + 10)) {
          ++mismatches;
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(backend_->list("data").size(), static_cast<std::size_t>(kThreads * kObjects));
}

TEST_P(Conformance, ListingWithManyObjectsIsCompleteSortedAndSized) {
  constexpr int kObjects = 1200;  // more than one page of an S3 listing (1000)
  std::set<std::string> expected;
  for (int i = 0; i < kObjects; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "snapshots/%010d-aa.enc", i);
    backend_->put(name, random_data(static_cast<std::size_t>(i % 17), static_cast<std::uint64_t>(i)), Overwrite::no);
    expected.insert(name);
  }
  backend_->put("data/ff/other.enc", as_bytes("x"), Overwrite::no);
  const std::vector<ObjectInfo> listed = backend_->list("snapshots");
  ASSERT_EQ(listed.size(), expected.size());
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; }));
  for (const ObjectInfo& object : listed) {
    ASSERT_EQ(expected.count(object.name), 1U) << object.name;
    const int i = std::stoi(object.name.substr(10, 10));
    EXPECT_EQ(object.size, static_cast<std::uint64_t>(i % 17)) << object.name;
  }
  EXPECT_EQ(backend_->list("").size(), expected.size() + 1);
}

TEST_P(Conformance, ListingIsByWholeSegmentsAndRecursive) {
  backend_->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  backend_->put("data/cd/two.enc", as_bytes("22"), Overwrite::no);
  backend_->put("database/x.enc", as_bytes("333"), Overwrite::no);  // shares "data" as a string prefix only
  const std::vector<ObjectInfo> listed = backend_->list("data");
  ASSERT_EQ(listed.size(), 2U);
  EXPECT_EQ(listed[0], (ObjectInfo{"data/ab/one.enc", 1}));
  EXPECT_EQ(listed[1], (ObjectInfo{"data/cd/two.enc", 2}));
  EXPECT_EQ(backend_->list("data/ab").size(), 1U);
}

TEST_P(Conformance, RemoveDeletesOnlyThatObject) {
  backend_->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  backend_->put("data/ab/two.enc", as_bytes("2"), Overwrite::no);
  backend_->remove("data/ab/one.enc");
  EXPECT_FALSE(backend_->size("data/ab/one.enc").has_value());
  EXPECT_EQ(backend_->list("data").size(), 1U);
  backend_->remove("data/ab/two.enc");
  EXPECT_TRUE(backend_->list("data").empty());
}

TEST_P(Conformance, InvalidNamesAreRefused) {
  for (const char* name : {"", "/abs", "a//b", "../escape", "data/../x", "data/.hidden", "a b", "data/ab/"}) {
    EXPECT_EQ(kind_of([&] { backend_->put(name, as_bytes("x"), Overwrite::yes); }), ErrorKind::usage) << "'" << name << "'";
    EXPECT_EQ(kind_of([&] { backend_->get(name, 10); }), ErrorKind::usage) << "'" << name << "'";
  }
  EXPECT_TRUE(backend_->empty());
}

TEST_P(Conformance, LocationIsNotEmpty) { EXPECT_FALSE(backend_->location().empty()); }

// ---- the backends

INSTANTIATE_TEST_SUITE_P(Local, Conformance,
                         ::testing::Values(BackendFactory{"local", [](const std::string& scratch) {
                                                            return make_local_backend(scratch + "/store");
                                                          }}),
                         backend_factory_name);

// The decorators must keep the contract too.
INSTANTIATE_TEST_SUITE_P(Decorated, Conformance,
                         ::testing::Values(BackendFactory{"retrying_local", [](const std::string& scratch) {
                                                            return make_retrying_backend(make_local_backend(scratch + "/store"));
                                                          }},
                                           BackendFactory{"fault_injecting_local", [](const std::string& scratch) {
                                                            auto faults = std::make_unique<FaultInjectingBackend>(
                                                                make_local_backend(scratch + "/store"));
                                                            faults->set_latency(std::chrono::microseconds(50));
                                                            return std::unique_ptr<Backend>(std::move(faults));
                                                          }}),
                         backend_factory_name);

// Real S3 servers on loopback (the CTest fixture s3_server), opened through the registry as a
// user's destination would be, retry decorator included: Ceph's RADOS Gateway, and s3rver.
INSTANTIATE_TEST_SUITE_P(S3, Conformance,
                         ::testing::Values(BackendFactory{"ceph_rgw", [](const std::string&) {
                                                            return open_backend(normalize_destination(s3_test_url()));
                                                          }},
                                           // A second implementation (npm's s3rver), over TLS with a CA
                                           // of the run's own; it ignores If-None-Match.
                                           BackendFactory{"s3rver_tls",
                                                          [](const std::string&) {
                                                            return open_backend(normalize_destination(s3rver_test_url()));
                                                          },
                                                          false},
                                           // The same, addressed virtual-hosted style (BUCKET.s3.localhost).
                                           BackendFactory{"s3rver_virtual_hosted",
                                                          [](const std::string&) {
                                                            return open_backend(
                                                                normalize_destination(s3rver_test_url("mybackup-tests", true)));
                                                          },
                                                          false}),
                         backend_factory_name);

// One OpenSSH server on loopback for the whole suite (stopped at exit); each test gets a fresh
// folder: its scratch directory, which the server (same machine, same user) sees as it is.
test_servers::SshdServer& suite_sshd() {
  static test_servers::SshdServer server;
  return server;
}

INSTANTIATE_TEST_SUITE_P(Sftp, Conformance,
                         ::testing::Values(BackendFactory{"sftp", [](const std::string& scratch) {
                                             return open_backend(normalize_destination(suite_sshd().url(scratch + "/store")));
                                           }}),
                         backend_factory_name);

}  // namespace
}  // namespace mybackup::testing
