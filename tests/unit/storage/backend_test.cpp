#include "mybackup/storage/backend.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "fault_backend.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::names_of;
using testing::kAnySize;

using testing::error_kind;
using testing::FaultInjectingBackend;
using testing::files_under;
using testing::random_data;
using testing::read_text_file;
using testing::TempDir;
using testing::temporaries_under;
using testing::to_bytes;
using testing::write_text_file;

mode_t file_mode(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return 0;
  }
  return info.st_mode & 07777;
}

/// Sets the process umask for the lifetime of the object.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t previous_;
};

// ---------------------------------------------------------------- LocalBackend

TEST(Backend, put_then_get_returns_the_same_bytes) {
  TempDir dir;
  auto backend = make_local_backend(dir / "repo");
  const Bytes binary = random_data(100'000, 7);
  backend->put("data/ab/object.enc", binary, Overwrite::no);
  backend->put("empty", Bytes{}, Overwrite::no);
  EXPECT_EQ(backend->get("data/ab/object.enc", kAnySize), binary);
  EXPECT_TRUE(backend->get("empty", kAnySize).empty());
  EXPECT_EQ(backend->location(), dir / "repo");
}

TEST(Backend, objects_are_plain_files_under_the_root) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("snapshots/0000000001-x.enc", to_bytes("manifest"), Overwrite::no);
  EXPECT_EQ(read_text_file(dir / "snapshots/0000000001-x.enc"), "manifest");
}

TEST(Backend, size_of_stored_and_missing_keys) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("a/b", Bytes(1234, 0x5a), Overwrite::no);
  EXPECT_EQ(backend->size("a/b"), std::optional<std::uint64_t>(1234));
  EXPECT_EQ(backend->size("a/missing"), std::nullopt);
  EXPECT_EQ(backend->size("nowhere/at/all"), std::nullopt);
  EXPECT_EQ(backend->size("a/b/below-a-file"), std::nullopt);
}

TEST(Backend, get_of_a_missing_key_is_not_found) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  EXPECT_EQ(error_kind([&] { backend->get("data/00/missing.enc", kAnySize); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { backend->get_range("data/00/missing.enc", 0, 1); }), ErrorKind::not_found);
}

TEST(Backend, get_range_returns_the_requested_slice) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  const Bytes data = random_data(5000, 3);
  backend->put("pack", data, Overwrite::no);
  EXPECT_EQ(backend->get_range("pack", 0, 5000), data);
  EXPECT_EQ(backend->get_range("pack", 100, 50), Bytes(data.begin() + 100, data.begin() + 150));
  EXPECT_EQ(backend->get_range("pack", 4999, 1), Bytes{data.back()});
  EXPECT_TRUE(backend->get_range("pack", 5000, 0).empty());
}

TEST(Backend, get_range_past_the_end_is_corrupt) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("pack", Bytes(100, 1), Overwrite::no);
  EXPECT_EQ(error_kind([&] { backend->get_range("pack", 90, 11); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend->get_range("pack", 100, 1); }), ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend->get_range("pack", 101, 0); }), ErrorKind::corrupt);
  // A damaged index entry may ask for a huge range: refused, not allocated.
  EXPECT_EQ(error_kind([&] { backend->get_range("pack", 0, std::numeric_limits<std::uint32_t>::max()); }),
            ErrorKind::corrupt);
  EXPECT_EQ(error_kind([&] { backend->get_range("pack", std::numeric_limits<std::uint64_t>::max(), 2); }),
            ErrorKind::corrupt);
}

TEST(Backend, get_range_reads_what_this_backend_wrote_or_deleted_since_the_last_read) {
  // Ranged reads keep the object open between calls: writing or deleting it must not leave the
  // old file to the next read.
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("data/ab/pack", to_bytes("first bytes"), Overwrite::no);
  EXPECT_EQ(backend->get_range("data/ab/pack", 0, 5), to_bytes("first"));
  backend->put("data/ab/pack", to_bytes("other bytes, longer"), Overwrite::yes);
  EXPECT_EQ(backend->get_range("data/ab/pack", 0, 5), to_bytes("other"));
  EXPECT_EQ(backend->get_range("data/ab/pack", 13, 6), to_bytes("longer"));
  backend->remove("data/ab/pack");
  EXPECT_EQ(error_kind([&] { backend->get_range("data/ab/pack", 0, 5); }), ErrorKind::not_found);
  backend->put("data/ab/pack", to_bytes("third"), Overwrite::no);
  EXPECT_EQ(backend->get_range("data/ab/pack", 0, 5), to_bytes("third"));
}

TEST(Backend, get_range_of_many_objects_in_turn_reads_each_its_own_bytes) {
  // More objects than are kept open, read back and forth.
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  for (int i = 0; i < 20; ++i) {
    backend->put("data/" + std::to_string(i), random_data(1000, static_cast<std::uint64_t>(i)), Overwrite::no);
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = round % 2 == 0 ? 0 : 19; i >= 0 && i < 20; i += round % 2 == 0 ? 1 : -1) {
      const Bytes data = random_data(1000, static_cast<std::uint64_t>(i));
      EXPECT_EQ(backend->get_range("data/" + std::to_string(i), 10 * i, 100), Bytes(data.begin() + 10 * i, data.begin() + 10 * i + 100));
    }
  }
}

TEST(Backend, get_range_of_an_object_truncated_after_it_was_read_is_corrupt) {
  // Another process (or a hostile destination) shortens a pack this backend holds open.
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("data/pack", Bytes(4096, 7), Overwrite::no);
  EXPECT_EQ(backend->get_range("data/pack", 4000, 96), Bytes(96, 7));
  ASSERT_EQ(::truncate((dir.path() + "/data/pack").c_str(), 100), 0);
  EXPECT_EQ(error_kind([&] { backend->get_range("data/pack", 4000, 96); }), ErrorKind::corrupt);
}

TEST(Backend, overwrite_no_on_a_taken_key_is_exists_and_keeps_the_old_object) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("locks/writer.json", to_bytes("first"), Overwrite::no);
  EXPECT_EQ(error_kind([&] { backend->put("locks/writer.json", to_bytes("second"), Overwrite::no); }),
            ErrorKind::exists);
  EXPECT_EQ(backend->get("locks/writer.json", kAnySize), to_bytes("first"));
  EXPECT_TRUE(temporaries_under(dir.path()).empty());
}

TEST(Backend, overwrite_yes_replaces_the_object) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("locks/writer.json", to_bytes("first, longer content"), Overwrite::no);
  backend->put("locks/writer.json", to_bytes("second"), Overwrite::yes);
  EXPECT_EQ(backend->get("locks/writer.json", kAnySize), to_bytes("second"));
  backend->put("fresh", to_bytes("new"), Overwrite::yes);
  EXPECT_EQ(backend->get("fresh", kAnySize), to_bytes("new"));
  EXPECT_TRUE(temporaries_under(dir.path()).empty());
}

TEST(Backend, list_is_recursive_sorted_and_skips_temporaries) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  for (const std::string key : {"data/ff/z.enc", "data/00/b.enc", "data/00/a.enc", "data/7a/deep/er/c.enc",
                                "snapshots/0000000001-x.enc", "mybackup-repo.json"}) {
    backend->put(key, to_bytes(key), Overwrite::no);
  }
  // Leftovers of interrupted writes, and a temporary directory: never listed.
  write_text_file(dir / "data/00/.tmp-0123456789abcdef", "partial");
  write_text_file(dir / ".tmp-fedcba9876543210", "partial");
  std::filesystem::create_directories(dir / "data/.tmp-dir");
  write_text_file(dir / "data/.tmp-dir/inside", "x");

  const std::vector<std::string> expected_data = {"data/00/a.enc", "data/00/b.enc", "data/7a/deep/er/c.enc",
                                                  "data/ff/z.enc"};
  EXPECT_EQ(names_of(backend->list("data")), expected_data);
  EXPECT_EQ(names_of(backend->list("data/00")), (std::vector<std::string>{"data/00/a.enc", "data/00/b.enc"}));
  EXPECT_EQ(names_of(backend->list("snapshots")), std::vector<std::string>{"snapshots/0000000001-x.enc"});

  const std::vector<std::string> everything = names_of(backend->list(""));
  const std::vector<std::string> expected_all = {"data/00/a.enc",      "data/00/b.enc",
                                                 "data/7a/deep/er/c.enc", "data/ff/z.enc",
                                                 "mybackup-repo.json", "snapshots/0000000001-x.enc"};
  EXPECT_EQ(everything, expected_all);
}

TEST(Backend, list_of_an_absent_prefix_or_root_is_empty) {
  TempDir dir;
  auto absent = make_local_backend(dir / "not/yet");
  EXPECT_TRUE(absent->list("data").empty());
  EXPECT_TRUE(absent->list("").empty());
  auto backend = make_local_backend(dir.path());
  backend->put("data/00/a", to_bytes("a"), Overwrite::no);
  EXPECT_TRUE(backend->list("snapshots").empty());
}

TEST(Backend, remove_deletes_and_tolerates_a_missing_key) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("data/00/a", to_bytes("a"), Overwrite::no);
  backend->put("data/00/b", to_bytes("b"), Overwrite::no);
  backend->remove("data/00/a");
  EXPECT_EQ(backend->size("data/00/a"), std::nullopt);
  EXPECT_EQ(names_of(backend->list("data")), std::vector<std::string>{"data/00/b"});
  EXPECT_NO_THROW(backend->remove("data/00/a"));
  EXPECT_NO_THROW(backend->remove("never/existed"));
  // The key is free again.
  backend->put("data/00/a", to_bytes("again"), Overwrite::no);
  EXPECT_EQ(backend->get("data/00/a", kAnySize), to_bytes("again"));
}

TEST(Backend, empty_reports_whether_anything_is_stored) {
  TempDir dir;
  auto absent = make_local_backend(dir / "absent");
  EXPECT_TRUE(absent->empty());
  auto backend = make_local_backend(dir.path());
  EXPECT_TRUE(backend->empty());
  backend->put("x", to_bytes("x"), Overwrite::no);
  EXPECT_FALSE(backend->empty());
  backend->remove("x");
  EXPECT_TRUE(backend->empty());
  std::filesystem::create_directory(dir / "some-directory");
  EXPECT_FALSE(backend->empty());
}

TEST(Backend, a_leftover_temporary_does_not_make_the_location_non_empty) {
  // A crash while creating the very first object (the repository marker) leaves only a
  // temporary behind; the location must still count as empty, or it could never be initialised.
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  write_text_file(dir / ".tmp-0123456789abcdef", "partial marker");
  EXPECT_TRUE(backend->empty());
  EXPECT_TRUE(backend->list("").empty());
}

TEST(Backend, root_is_created_on_first_put) {
  TempDir dir;
  const std::string root = dir / "nested/new/root";
  auto backend = make_local_backend(root);
  EXPECT_FALSE(path_exists(root));
  backend->put("data/00/first", to_bytes("1"), Overwrite::no);
  EXPECT_TRUE(std::filesystem::is_directory(root));
  EXPECT_EQ(backend->get("data/00/first", kAnySize), to_bytes("1"));
  EXPECT_EQ(files_under(root), std::vector<std::string>{"data/00/first"});
}

TEST(Backend, put_where_the_root_cannot_be_created_is_io_and_leaves_nothing) {
  TempDir dir;
  write_text_file(dir / "a-file", "not a directory");
  auto backend = make_local_backend(dir / "a-file/repo");
  EXPECT_EQ(error_kind([&] { backend->put("data/00/x", to_bytes("x"), Overwrite::no); }), ErrorKind::io);
  EXPECT_EQ(error_kind([&] { backend->put("marker", to_bytes("x"), Overwrite::yes); }), ErrorKind::io);
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"a-file"});
  EXPECT_EQ(read_text_file(dir / "a-file"), "not a directory");
  EXPECT_TRUE(temporaries_under(dir.path()).empty());
}

TEST(Backend, put_onto_a_key_that_is_a_directory_fails_and_leaves_no_temporary) {
  TempDir dir;
  auto backend = make_local_backend(dir.path());
  backend->put("data/00/a", to_bytes("a"), Overwrite::no);
  EXPECT_EQ(error_kind([&] { backend->put("data/00", to_bytes("x"), Overwrite::yes); }), ErrorKind::io);
  EXPECT_TRUE(error_kind([&] { backend->put("data/00", to_bytes("x"), Overwrite::no); }).has_value());
  EXPECT_EQ(backend->get("data/00/a", kAnySize), to_bytes("a"));
  EXPECT_TRUE(temporaries_under(dir.path()).empty());
}

// ---------------------------------------------------------------- the test decorator

TEST(Backend, fault_injecting_backend_fails_the_chosen_put_and_stores_nothing) {
  TempDir dir;
  FaultInjectingBackend faults(make_local_backend(dir.path()));
  faults.fail_put_number(2, ErrorKind::no_space);
  faults.put("data/1", to_bytes("1"), Overwrite::no);
  EXPECT_EQ(error_kind([&] { faults.put("data/2", to_bytes("2"), Overwrite::no); }), ErrorKind::no_space);
  faults.put("data/3", to_bytes("3"), Overwrite::no);
  EXPECT_EQ(faults.puts(), 3);
  EXPECT_EQ(faults.failed_puts(), 1);
  EXPECT_EQ(faults.stored_keys(), (std::vector<std::string>{"data/1", "data/3"}));
  EXPECT_EQ(names_of(faults.list("data")), (std::vector<std::string>{"data/1", "data/3"}));
  EXPECT_EQ(faults.get("data/3", kAnySize), to_bytes("3"));
  EXPECT_EQ(faults.location(), dir.path());
}

TEST(Backend, fault_injecting_backend_fails_every_put_after_n_for_matching_keys) {
  TempDir dir;
  FaultInjectingBackend faults(make_local_backend(dir.path()));
  faults.set_key_filter("data/");
  faults.fail_puts_after(1, ErrorKind::io);
  faults.put("data/a", to_bytes("a"), Overwrite::no);
  faults.put("snapshots/x", to_bytes("x"), Overwrite::no);  // not counted, never fails
  EXPECT_EQ(error_kind([&] { faults.put("data/b", to_bytes("b"), Overwrite::no); }), ErrorKind::io);
  EXPECT_EQ(error_kind([&] { faults.put("data/c", to_bytes("c"), Overwrite::no); }), ErrorKind::io);
  faults.put("snapshots/y", to_bytes("y"), Overwrite::no);
  EXPECT_EQ(faults.puts(), 3);
  EXPECT_EQ(faults.failed_puts(), 2);
  EXPECT_EQ(names_of(faults.list("")), (std::vector<std::string>{"data/a", "snapshots/x", "snapshots/y"}));

  faults.clear_faults();
  faults.put("data/b", to_bytes("b"), Overwrite::no);
  faults.reset_counts();
  EXPECT_EQ(faults.puts(), 0);
  EXPECT_EQ(faults.failed_puts(), 0);
  faults.fail_put_number(1);
  EXPECT_EQ(error_kind([&] { faults.put("data/d", to_bytes("d"), Overwrite::no); }), ErrorKind::no_space);
  EXPECT_EQ(faults.size("data/d"), std::nullopt);
}

// ---------------------------------------------------------------- fs.hpp

TEST(Fs, write_file_atomic_creates_and_replaces_content) {
  TempDir dir;
  const std::string path = dir / "config.yaml";
  write_file_atomic(path, to_bytes("first version, quite long\n"));
  EXPECT_EQ(read_text_file(path), "first version, quite long\n");
  write_file_atomic(path, to_bytes("second\n"));
  EXPECT_EQ(read_text_file(path), "second\n");
  write_file_atomic(path, Bytes{});
  EXPECT_EQ(read_text_file(path), "");
  EXPECT_EQ(files_under(dir.path()), std::vector<std::string>{"config.yaml"});
}

TEST(Fs, write_file_atomic_honours_the_mode) {
  const ScopedUmask umask_022(022);
  TempDir dir;
  write_file_atomic(dir / "key", to_bytes("secret"), 0600);
  EXPECT_EQ(file_mode(dir / "key"), 0600U);
  write_file_atomic(dir / "key", to_bytes("secret 2"), 0600);
  EXPECT_EQ(file_mode(dir / "key"), 0600U);
  write_file_atomic(dir / "public", to_bytes("hello"));
  EXPECT_EQ(file_mode(dir / "public"), 0644U);
  create_file_atomic(dir / "created", to_bytes("x"), 0600);
  EXPECT_EQ(file_mode(dir / "created"), 0600U);
}

TEST(Fs, create_file_atomic_refuses_an_existing_path) {
  TempDir dir;
  const std::string path = dir / "key";
  create_file_atomic(path, to_bytes("original"));
  EXPECT_EQ(read_text_file(path), "original");
  EXPECT_EQ(error_kind([&] { create_file_atomic(path, to_bytes("replacement")); }), ErrorKind::exists);
  EXPECT_EQ(read_text_file(path), "original");
  // A dangling symlink is an existing path too.
  ASSERT_EQ(::symlink("nowhere", (dir / "link").c_str()), 0);
  EXPECT_EQ(error_kind([&] { create_file_atomic(dir / "link", to_bytes("x")); }), ErrorKind::exists);
  EXPECT_FALSE(path_exists(dir / "nowhere"));
  EXPECT_TRUE(temporaries_under(dir.path()).empty());
}

TEST(Fs, no_temporaries_are_left_after_success_or_failure) {
  TempDir dir;
  write_file_atomic(dir / "a", to_bytes("a"));
  create_file_atomic(dir / "b", to_bytes("b"));
  EXPECT_TRUE(temporaries_under(dir.path()).empty());

  // Failures after the temporary was written: the target is taken, or is a directory.
  EXPECT_EQ(error_kind([&] { create_file_atomic(dir / "a", to_bytes("x")); }), ErrorKind::exists);
  std::filesystem::create_directories(dir / "dir/child");
  EXPECT_EQ(error_kind([&] { write_file_atomic(dir / "dir", to_bytes("x")); }), ErrorKind::io);
  // Failure before anything could be written: the directory does not exist.
  EXPECT_EQ(error_kind([&] { write_file_atomic(dir / "missing/a", to_bytes("x")); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { create_file_atomic(dir / "missing/b", to_bytes("x")); }), ErrorKind::not_found);

  EXPECT_TRUE(temporaries_under(dir.path()).empty());
  EXPECT_EQ(files_under(dir.path()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_text_file(dir / "a"), "a");
}

TEST(Fs, read_file_of_a_missing_path_is_not_found) {
  TempDir dir;
  EXPECT_EQ(error_kind([&] { read_file(dir / "missing"); }), ErrorKind::not_found);
  EXPECT_EQ(error_kind([&] { read_file(dir.path()); }), ErrorKind::io);
  write_text_file(dir / "present", "content");
  EXPECT_EQ(read_file(dir / "present"), to_bytes("content"));
}

TEST(Fs, make_directories_creates_every_level_and_refuses_a_file) {
  TempDir dir;
  make_directories(dir / "a/b/c");
  EXPECT_TRUE(std::filesystem::is_directory(dir / "a/b/c"));
  EXPECT_NO_THROW(make_directories(dir / "a/b/c"));
  write_text_file(dir / "file", "x");
  EXPECT_EQ(error_kind([&] { make_directories(dir / "file"); }), ErrorKind::io);
  EXPECT_EQ(error_kind([&] { make_directories(dir / "file/below"); }), ErrorKind::io);
}

TEST(Fs, path_helpers) {
  EXPECT_EQ(parent_directory("/a/b"), "/a");
  EXPECT_EQ(parent_directory("/a"), "/");
  EXPECT_EQ(parent_directory("b"), ".");
  EXPECT_EQ(parent_directory("a/b/c"), "a/b");
  EXPECT_EQ(join_path("/a", "b"), "/a/b");
  EXPECT_EQ(join_path("/a/", "b"), "/a/b");
  EXPECT_EQ(join_path("", "b"), "b");
  TempDir dir;
  EXPECT_TRUE(path_exists(dir.path()));
  EXPECT_FALSE(path_exists(dir / "missing"));
  ASSERT_EQ(::symlink("missing", (dir / "dangling").c_str()), 0);
  EXPECT_TRUE(path_exists(dir / "dangling"));
}

}  // namespace
}  // namespace mybackup

namespace mybackup {
namespace {

TEST(Backend, a_root_that_is_a_link_is_followed_but_nothing_below_it) {
  testing::TempDir dir;
  ASSERT_EQ(::mkdir((dir / "disk").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((dir / "disk").c_str(), (dir / "backups").c_str()), 0);  // /mnt/backups -> the disk
  const auto backend = make_local_backend(dir / "backups");
  backend->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  EXPECT_EQ(testing::names_of(backend->list("")), std::vector<std::string>{"data/ab/one.enc"});
  EXPECT_EQ(testing::names_of(backend->list("data")), std::vector<std::string>{"data/ab/one.enc"});

  // Below the root, links are not objects: never listed, never read.
  ASSERT_EQ(::mkdir((dir / "elsewhere").c_str(), 0755), 0);
  testing::write_text_file(dir / "elsewhere/secret.enc", "secret");
  ASSERT_EQ(::symlink((dir / "elsewhere").c_str(), (dir / "disk/snapshots").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "elsewhere/secret.enc").c_str(), (dir / "disk/data/ab/link.enc").c_str()), 0);
  EXPECT_EQ(testing::names_of(backend->list("")), std::vector<std::string>{"data/ab/one.enc"});
  EXPECT_TRUE(backend->list("snapshots").empty());
  EXPECT_EQ(testing::error_kind([&] { backend->get("data/ab/link.enc", 100); }), ErrorKind::corrupt);
}

// Attack (issue 11, item 1): `keys/` (or any folder of the layout) replaced by a link to a local
// folder. Sync deleted every file of the link's target, and copied local files to the secondary.
// No operation may reach through such a link: not reading, not writing, not deleting.
TEST(Backend, a_link_in_place_of_a_folder_is_never_followed_for_any_operation) {
  testing::TempDir dir;
  ASSERT_EQ(::mkdir((dir / "victim").c_str(), 0700), 0);
  testing::write_text_file(dir / "victim/id_ed25519.json", "PRIVATE KEY");
  testing::write_text_file(dir / "victim/keep.enc", "keep me");
  const auto backend = make_local_backend(dir / "repo");
  backend->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  ASSERT_EQ(::symlink((dir / "victim").c_str(), (dir / "repo/keys").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "victim").c_str(), (dir / "repo/data/cd").c_str()), 0);

  for (const std::string name : {"keys/id_ed25519.json", "data/cd/keep.enc"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(testing::error_kind([&] { backend->get(name, 100); }), ErrorKind::corrupt);
    EXPECT_EQ(testing::error_kind([&] { backend->get_range(name, 0, 1); }), ErrorKind::corrupt);
    EXPECT_EQ(testing::error_kind([&] { backend->size(name); }), ErrorKind::corrupt);
    EXPECT_EQ(testing::error_kind([&] { backend->remove(name); }), ErrorKind::corrupt);
    EXPECT_EQ(testing::error_kind([&] { backend->put(name, as_bytes("planted"), Overwrite::yes); }), ErrorKind::corrupt);
  }
  EXPECT_EQ(testing::error_kind([&] { backend->put("keys/new.json", as_bytes("x"), Overwrite::no); }), ErrorKind::corrupt);
  EXPECT_TRUE(backend->list("keys").empty());
  EXPECT_EQ(testing::names_of(backend->list("")), std::vector<std::string>{"data/ab/one.enc"});

  // The link's target is exactly as it was.
  EXPECT_EQ(testing::files_under(dir / "victim"), (std::vector<std::string>{"id_ed25519.json", "keep.enc"}));
  EXPECT_EQ(testing::read_text_file(dir / "victim/id_ed25519.json"), "PRIVATE KEY");
  EXPECT_EQ(testing::read_text_file(dir / "victim/keep.enc"), "keep me");
}

TEST(Backend, a_file_in_place_of_a_folder_holds_no_objects_and_takes_none) {
  testing::TempDir dir;
  const auto backend = make_local_backend(dir / "repo");
  backend->put("data/ab/one.enc", as_bytes("1"), Overwrite::no);
  testing::write_text_file(dir / "repo/keys", "not a folder");
  EXPECT_EQ(backend->size("keys/a.json"), std::nullopt);
  EXPECT_EQ(testing::error_kind([&] { backend->get("keys/a.json", 100); }), ErrorKind::not_found);
  EXPECT_NO_THROW(backend->remove("keys/a.json"));
  EXPECT_EQ(testing::error_kind([&] { backend->put("keys/a.json", as_bytes("x"), Overwrite::no); }), ErrorKind::corrupt);
  EXPECT_EQ(testing::read_text_file(dir / "repo/keys"), "not a folder");
}

}  // namespace
}  // namespace mybackup
