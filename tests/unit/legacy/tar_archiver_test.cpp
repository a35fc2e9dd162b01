#include "mybackup/legacy/tar_archiver.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::catch_error;
using testing::read_text_file;
using testing::TempDir;
using testing::write_text_file;

constexpr std::int64_t kSecond = 1'000'000'000;

/// One entry of an archive as libarchive reads it back.
struct Member {
  char type = '?';  // 'f' file, 'd' directory, 'l' symlink, 'h' hard link
  unsigned mode = 0;
  std::int64_t mtime = 0;
  std::string content;  // file body, link target
};

std::map<std::string, Member> read_archive(const std::string& path, int* format = nullptr) {
  std::map<std::string, Member> members;
  archive* reader = archive_read_new();
  archive_read_support_format_all(reader);
  EXPECT_EQ(archive_read_open_filename(reader, path.c_str(), 10240), ARCHIVE_OK) << archive_error_string(reader);
  archive_entry* entry = nullptr;
  while (archive_read_next_header(reader, &entry) == ARCHIVE_OK) {
    Member member;
    member.mode = archive_entry_perm(entry);
    member.mtime = archive_entry_mtime(entry);
    if (archive_entry_hardlink(entry) != nullptr) {
      member.type = 'h';
      member.content = archive_entry_hardlink(entry);
    } else if (archive_entry_filetype(entry) == AE_IFDIR) {
      member.type = 'd';
    } else if (archive_entry_filetype(entry) == AE_IFLNK) {
      member.type = 'l';
      member.content = archive_entry_symlink(entry);
    } else if (archive_entry_filetype(entry) == AE_IFREG) {
      member.type = 'f';
      char buffer[65536];
      for (la_ssize_t n; (n = archive_read_data(reader, buffer, sizeof buffer)) > 0;) {
        member.content.append(buffer, static_cast<std::size_t>(n));
      }
    }
    if (format != nullptr) {
      *format = archive_format(reader);
    }
    std::string name = archive_entry_pathname(entry);
    if (member.type == 'd' && !name.empty() && name.back() == '/') {
      name.pop_back();  // tar marks directories with a trailing slash
    }
    members[name] = member;
  }
  archive_read_free(reader);
  return members;
}

void set_mtime(const std::string& path, std::int64_t seconds) {
  const timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

/// documents/ with a file (0640), a 3 MiB file in sub/, a symlink, an empty directory, a hard link.
std::string make_tree(const TempDir& dir) {
  const std::string root = dir / "documents";
  EXPECT_EQ(::mkdir(root.c_str(), 0750), 0);
  EXPECT_EQ(::mkdir((root + "/sub").c_str(), 0700), 0);
  EXPECT_EQ(::mkdir((root + "/empty").c_str(), 0755), 0);
  write_text_file(root + "/a.txt", "alpha\n");
  EXPECT_EQ(::chmod((root + "/a.txt").c_str(), 0640), 0);
  const Bytes big = testing::random_data(3 * 1024 * 1024 + 17, 7);
  write_text_file(root + "/sub/big.bin", std::string(big.begin(), big.end()));
  EXPECT_EQ(::symlink("a.txt", (root + "/link").c_str()), 0);
  EXPECT_EQ(::symlink("/nowhere/at/all", (root + "/dangling").c_str()), 0);
  EXPECT_EQ(::link((root + "/a.txt").c_str(), (root + "/sub/hard.txt").c_str()), 0);
  set_mtime(root + "/a.txt", 1'600'000'000);
  set_mtime(root + "/sub/big.bin", 1'500'000'000);
  set_mtime(root + "/link", 1'400'000'000);
  set_mtime(root + "/sub", 1'300'000'000);
  return root;
}

TEST(TarArchiver, WritesAPaxTarWithModesTimesLinksAndContent) {
  TempDir dir("tar_archiver_test_");
  const std::string root = make_tree(dir);
  const TarArchiver archiver(dir / "backups");
  const ArchiveResult result = archiver.write(root, "docs_morning");
  EXPECT_EQ(result.archive_path, dir / "backups/docs_morning.tar");
  EXPECT_EQ(result.files, 3u);  // a.txt, big.bin, the hard link
  EXPECT_EQ(result.directories, 3u);
  EXPECT_EQ(result.symlinks, 2u);
  EXPECT_TRUE(result.problems.empty());
  struct stat info {};
  ASSERT_EQ(::stat(result.archive_path.c_str(), &info), 0);
  EXPECT_EQ(result.bytes, static_cast<std::uint64_t>(info.st_size));
  EXPECT_GT(result.bytes, 3u * 1024 * 1024);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  const std::string raw = read_text_file(result.archive_path);
  EXPECT_EQ(raw.substr(257, 6), std::string("ustar\0", 6));  // POSIX tar (pax extends ustar)

  const auto members = read_archive(result.archive_path);
  ASSERT_EQ(members.size(), 8u);
  EXPECT_EQ(members.at("documents").type, 'd');
  EXPECT_EQ(members.at("documents").mode, 0750u);
  EXPECT_EQ(members.at("documents/sub").mtime, 1'300'000'000);
  EXPECT_EQ(members.at("documents/empty").type, 'd');
  EXPECT_EQ(members.at("documents/a.txt").content, "alpha\n");
  EXPECT_EQ(members.at("documents/a.txt").mode, 0640u);
  EXPECT_EQ(members.at("documents/a.txt").mtime, 1'600'000'000);
  EXPECT_EQ(members.at("documents/sub/big.bin").content, read_text_file(root + "/sub/big.bin"));
  EXPECT_EQ(members.at("documents/sub/big.bin").mtime, 1'500'000'000);
  EXPECT_EQ(members.at("documents/link").type, 'l');
  EXPECT_EQ(members.at("documents/link").content, "a.txt");
  EXPECT_EQ(members.at("documents/link").mtime, 1'400'000'000);
  EXPECT_EQ(members.at("documents/dangling").content, "/nowhere/at/all");
  EXPECT_EQ(members.at("documents/sub/hard.txt").type, 'h');
  EXPECT_EQ(members.at("documents/sub/hard.txt").content, "documents/a.txt");
  EXPECT_TRUE(testing::temporaries_under(dir / "backups").empty());
}

TEST(TarArchiver, GnuTarExtractsTheSameTree) {
  TempDir dir("tar_archiver_test_");
  const std::string root = make_tree(dir);
  const ArchiveResult result = TarArchiver(dir / "backups").write(root, "docs");
  ASSERT_EQ(::mkdir((dir / "out").c_str(), 0755), 0);
  const std::string command = "tar -xpf '" + result.archive_path + "' -C '" + dir / "out" + "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  for (const char* name : {"a.txt", "sub/big.bin", "sub/hard.txt"}) {
    EXPECT_EQ(read_text_file(dir / "out/documents/" + name), read_text_file(root + "/" + name)) << name;
  }
  struct stat a {};
  struct stat hard {};
  ASSERT_EQ(::stat((dir / "out/documents/a.txt").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir / "out/documents/sub/hard.txt").c_str(), &hard), 0);
  EXPECT_EQ(a.st_ino, hard.st_ino);  // still one file with two names
  EXPECT_EQ(a.st_mode & 0777, 0640u);
  EXPECT_EQ(a.st_mtim.tv_sec, 1'600'000'000);
  char target[64] = {};
  ASSERT_GT(::readlink((dir / "out/documents/link").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "a.txt");
}

TEST(TarArchiver, ASingleFileIsStoredUnderItsName) {
  TempDir dir("tar_archiver_test_");
  write_text_file(dir / "notes.txt", "n");
  const ArchiveResult result = TarArchiver(dir / "backups").write(dir / "notes.txt", "notes");
  EXPECT_EQ(result.files, 1u);
  const auto members = read_archive(result.archive_path);
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members.at("notes.txt").content, "n");
}

TEST(TarArchiver, AMissingSourceIsNotFoundAndLeavesNothing) {
  TempDir dir("tar_archiver_test_");
  const Error error = catch_error([&] { TarArchiver(dir / "backups").write(dir / "gone", "gone"); });
  EXPECT_EQ(error.kind(), ErrorKind::not_found);
  EXPECT_NE(std::string(error.what()).find(dir / "gone"), std::string::npos) << error.what();
  EXPECT_TRUE(testing::files_under(dir / "backups").empty());
}

TEST(TarArchiver, AnInterruptedRunKeepsThePreviousArchive) {
  TempDir dir("tar_archiver_test_");
  const std::string root = make_tree(dir);
  const TarArchiver archiver(dir / "backups");
  const ArchiveResult first = archiver.write(root, "docs");
  const std::string before = read_text_file(first.archive_path);
  write_text_file(root + "/new.txt", "more");
  int calls = 0;
  const Error error = catch_error([&] { archiver.write(root, "docs", [&calls] { return ++calls > 3; }); });
  EXPECT_EQ(error.kind(), ErrorKind::interrupted);
  EXPECT_EQ(read_text_file(first.archive_path), before);
  EXPECT_EQ(testing::files_under(dir / "backups"), std::vector<std::string>{"docs.tar"});  // no temporary left
}

TEST(TarArchiver, TheArchiveDirectoryInsideTheSourceIsLeftOut) {
  TempDir dir("tar_archiver_test_");
  write_text_file(dir / "file.txt", "f");
  const TarArchiver archiver(dir / "backups");
  archiver.write(dir.path(), "self");
  const ArchiveResult second = archiver.write(dir.path(), "self");  // backups/self.tar exists now
  const auto members = read_archive(second.archive_path);
  const std::string top = dir.path().substr(dir.path().find_last_of('/') + 1);
  EXPECT_EQ(members.count(top + "/file.txt"), 1u);
  for (const auto& [name, member] : members) {
    EXPECT_EQ(name.find("backups"), std::string::npos) << name;
  }
}

TEST(TarArchiver, AnUnwritableArchiveDirectoryIsAnIoError) {
  TempDir dir("tar_archiver_test_");
  write_text_file(dir / "file.txt", "f");
  write_text_file(dir / "not_a_dir", "x");
  const Error error = catch_error([&] { TarArchiver(dir / "not_a_dir/backups").write(dir / "file.txt", "f"); });
  EXPECT_EQ(error.kind(), ErrorKind::io);
}

TEST(TarArchiver, ListArchivesOldestFirstWithoutTemporaries) {
  TempDir dir("tar_archiver_test_");
  EXPECT_TRUE(list_archives(dir / "none").empty());
  write_text_file(dir / "b.tar", "b");
  write_text_file(dir / "a.tar", "aa");
  write_text_file(dir / "c.tar", "c");
  write_text_file(dir / ".tmp-x-0011.tar", "t");
  write_text_file(dir / "readme.txt", "r");
  ASSERT_EQ(::mkdir((dir / "dir.tar").c_str(), 0755), 0);
  set_mtime(dir / "b.tar", 100);
  set_mtime(dir / "a.tar", 200);
  set_mtime(dir / "c.tar", 200);
  const std::vector<ArchiveInfo> archives = list_archives(dir.path());
  ASSERT_EQ(archives.size(), 3u);
  EXPECT_EQ(archives[0].file_name, "b.tar");
  EXPECT_EQ(archives[0].mtime_ns, 100 * kSecond);
  EXPECT_EQ(archives[1].file_name, "a.tar");
  EXPECT_EQ(archives[1].bytes, 2u);
  EXPECT_EQ(archives[2].file_name, "c.tar");
}

}  // namespace
}  // namespace mybackup
