#include "mybackup/legacy/schedule_book.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <thread>
#include <vector>

#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::catch_error;
using testing::read_text_file;
using testing::TempDir;
using testing::write_text_file;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ScheduleBook, ParsesTheSeedsLines) {
  const Schedule a = parse_schedule("documents;09:00;docs_morning");
  EXPECT_EQ(a.path, "documents");
  EXPECT_EQ(a.hour, 9);
  EXPECT_EQ(a.minute, 0);
  EXPECT_EQ(a.name, "docs_morning");
  EXPECT_EQ(a.time_text(), "09:00");
  EXPECT_EQ(a.line(), "documents;09:00;docs_morning");

  const Schedule b = parse_schedule("  /home/me/my photos ; 23:59 ;photos-v1.2\r");
  EXPECT_EQ(b.path, "/home/me/my photos");
  EXPECT_EQ(b.hour, 23);
  EXPECT_EQ(b.minute, 59);
  EXPECT_EQ(b.name, "photos-v1.2");
  EXPECT_EQ(parse_schedule("x;00:00;A").time_text(), "00:00");
}

TEST(ScheduleBook, InvalidLinesNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"documents;09:00", "has 2 fields"},
      {"documents", "has 1 field "},
      {"a;09:00;b;c", "has 4 fields"},
      {"", "has 1 field"},
      {";09:00;name", "the path is empty"},
      {"docs;9:00;name", "the time '9:00' must be HH:MM"},
      {"docs;24:00;name", "the time '24:00' must be HH:MM with hours 00-23"},
      {"docs;12:60;name", "the time '12:60'"},
      {"docs;12-30;name", "the time '12-30'"},
      {"docs;ab:cd;name", "the time 'ab:cd'"},
      {"docs;12:30;", "the name is empty"},
      {"docs;12:30;a/b", "contains '/'"},
      {"docs;12:30;my docs", "contains a space"},
      {"docs;12:30;caf\xc3\xa9", "use only letters, digits"},
      {"docs;12:30;.hidden", "starts with '.'"},
      {"docs;12:30;" + std::string(201, 'n'), "201 characters long"},
  };
  for (const auto& [line, expected] : cases) {
    // Init-capture: clang before 16 cannot capture a structured binding (C++20 allows it).
    const Error error = catch_error([&line = line] { parse_schedule(line); });
    EXPECT_EQ(error.kind(), ErrorKind::usage) << line;
    EXPECT_TRUE(contains(error.what(), expected)) << line << " -> " << error.what();
    EXPECT_FALSE(contains(error.what(), "\n")) << error.what();
  }
}

TEST(ScheduleBook, RoundTripKeepsCommentsBlankLinesAndSpacing) {
  const std::string text =
      "# my schedules\n"
      "\n"
      "documents;09:00;docs_morning\n"
      "   # indented comment\n"
      " photos ; 18:30 ; photos_evening \n"
      "\t\n"
      "code;23:59;code_nightly\n";
  const ScheduleBook book = ScheduleBook::parse(text, "f.txt");
  EXPECT_EQ(book.serialize(), text);
  ASSERT_EQ(book.size(), 3u);
  EXPECT_EQ(book.schedules()[1].path, "photos");
  EXPECT_EQ(book.schedules()[1].name, "photos_evening");
  EXPECT_EQ(book.find("code_nightly")->hour, 23);
  EXPECT_FALSE(book.find("code"));
}

TEST(ScheduleBook, ALastLineWithoutNewlineAndCrlfAreRead) {
  const ScheduleBook book = ScheduleBook::parse("a;01:02;x\r\nb;03:04;y", "f.txt");
  ASSERT_EQ(book.size(), 2u);
  EXPECT_EQ(book.schedules()[0].name, "x");
  EXPECT_EQ(book.schedules()[1].minute, 4);
  EXPECT_EQ(book.serialize(), "a;01:02;x\nb;03:04;y\n");
  EXPECT_EQ(ScheduleBook::parse("", "f.txt").size(), 0u);
  EXPECT_EQ(ScheduleBook::parse("", "f.txt").serialize(), "");
}

TEST(ScheduleBook, AnInvalidFileNamesItsLine) {
  const Error bad = catch_error([] { ScheduleBook::parse("# c\na;01:02;x\nb;25:00;y\n", "/h/backup_schedules.txt"); });
  EXPECT_EQ(bad.kind(), ErrorKind::config);
  EXPECT_TRUE(contains(bad.what(), "/h/backup_schedules.txt:3: the time '25:00'")) << bad.what();
  EXPECT_TRUE(contains(bad.what(), "fix or delete that line")) << bad.what();

  const Error twice = catch_error([] { ScheduleBook::parse("a;01:02;x\nb;03:04;x\n", "s.txt"); });
  EXPECT_EQ(twice.kind(), ErrorKind::config);
  EXPECT_TRUE(contains(twice.what(), "s.txt:2: the name 'x' is used twice")) << twice.what();
}

TEST(ScheduleBook, AddAndRemoveKeepCommentsAndIndexesSkipThem) {
  ScheduleBook book = ScheduleBook::parse("# head\na;01:00;x\n\n# mid\nb;02:00;y\nc;03:00;z\n", "f");
  book.add(parse_schedule("d;04:00;w"));
  EXPECT_EQ(book.size(), 4u);
  const Schedule removed = book.remove(1);
  EXPECT_EQ(removed.name, "y");
  EXPECT_EQ(book.serialize(), "# head\na;01:00;x\n\n# mid\nc;03:00;z\nd;04:00;w\n");

  const Error taken = catch_error([&] { book.add(parse_schedule("other;05:00;x")); });
  EXPECT_EQ(taken.kind(), ErrorKind::usage);
  EXPECT_TRUE(contains(taken.what(), "a schedule named 'x' already exists (a;01:00;x)")) << taken.what();

  const Error range = catch_error([&] { book.remove(3); });
  EXPECT_EQ(range.kind(), ErrorKind::usage);
  EXPECT_TRUE(contains(range.what(), "there is no schedule 3: the indexes are 0 to 2")) << range.what();

  ScheduleBook empty;
  const Error none = catch_error([&] { empty.remove(0); });
  EXPECT_TRUE(contains(none.what(), "there are no schedules")) << none.what();
}

TEST(ScheduleBook, RelativePathsAreReadFromTheBaseDirectory) {
  EXPECT_EQ(parse_schedule("documents;09:00;d").resolved_path("/home/me/.mybackup"), "/home/me/.mybackup/documents");
  EXPECT_EQ(parse_schedule("../data/./x;09:00;d").resolved_path("/app/state"), "/app/data/x");
  EXPECT_EQ(parse_schedule("/srv//data/;09:00;d").resolved_path("/app"), "/srv/data");
}

TEST(ScheduleFile, AddScheduleWritesTheLineAndKeepsTheRest) {
  TempDir dir("schedule_book_test_");
  ASSERT_EQ(::mkdir((dir / "documents").c_str(), 0755), 0);
  const std::string file = dir / "state/backup_schedules.txt";  // its directory does not exist yet
  EXPECT_EQ(load_schedule_book(file).size(), 0u);
  EXPECT_EQ(add_schedule(file, "documents;09:00;docs_morning", dir.path()), 0u);
  EXPECT_EQ(read_text_file(file), "documents;09:00;docs_morning\n");

  write_text_file(file, "# mine\ndocuments;09:00;docs_morning\n\n");
  EXPECT_EQ(add_schedule(file, dir / "documents;18:30;evening", "/elsewhere"), 1u);
  EXPECT_EQ(read_text_file(file), "# mine\ndocuments;09:00;docs_morning\n\n" + dir / "documents;18:30;evening\n");
  EXPECT_TRUE(testing::temporaries_under(dir / "state").empty());
}

TEST(ScheduleFile, InvalidCreatesLeaveTheFileUnchanged) {
  TempDir dir("schedule_book_test_");
  ASSERT_EQ(::mkdir((dir / "documents").c_str(), 0755), 0);
  const std::string file = dir / "backup_schedules.txt";
  const std::string before = "# keep me\ndocuments;09:00;docs\n";
  write_text_file(file, before);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"missing;09:00;m", "the path " + dir / "missing does not exist (a relative path is read from " + dir.path()},
      {"/no/such/dir;09:00;m", "the path /no/such/dir does not exist: give an existing file or directory"},
      {"documents;09:00;docs", "a schedule named 'docs' already exists"},
      {"documents;9:00;m", "the time '9:00'"},
      {"documents;09:00", "has 2 fields"},
  };
  for (const auto& [line, expected] : cases) {
    const Error error = catch_error([&, &line = line] { add_schedule(file, line, dir.path()); });
    EXPECT_EQ(error.kind(), ErrorKind::usage) << line;
    EXPECT_TRUE(contains(error.what(), expected)) << line << " -> " << error.what();
    EXPECT_EQ(read_text_file(file), before) << line;
  }
  EXPECT_TRUE(testing::temporaries_under(dir.path()).empty());
}

TEST(ScheduleFile, DeleteTakesAnIndexInRange) {
  TempDir dir("schedule_book_test_");
  const std::string file = dir / "backup_schedules.txt";
  const std::string before = "a;01:00;x\n# c\nb;02:00;y\n";
  write_text_file(file, before);
  for (const char* bad : {"2", "-1", "one", "", "1x", "99999999999999999999999"}) {
    const Error error = catch_error([&] { delete_schedule(file, bad); });
    EXPECT_EQ(error.kind(), ErrorKind::usage) << bad;
    EXPECT_EQ(read_text_file(file), before) << bad;
  }
  EXPECT_TRUE(contains(catch_error([&] { delete_schedule(file, "x"); }).what(), "'x' is not a schedule index"));
  EXPECT_EQ(delete_schedule(file, "1").name, "y");
  EXPECT_EQ(read_text_file(file), "a;01:00;x\n# c\n");
  EXPECT_EQ(delete_schedule(file, "0").name, "x");
  EXPECT_EQ(read_text_file(file), "# c\n");
}

TEST(ScheduleFile, AnInvalidFileIsReportedNotOverwritten) {
  TempDir dir("schedule_book_test_");
  const std::string file = dir / "backup_schedules.txt";
  write_text_file(file, "a;01:00\n");
  const Error error = catch_error([&] { add_schedule(file, dir.path() + ";02:00;y", "/"); });
  EXPECT_EQ(error.kind(), ErrorKind::config);
  EXPECT_TRUE(contains(error.what(), file + ":1: ")) << error.what();
  EXPECT_EQ(read_text_file(file), "a;01:00\n");
}

TEST(ScheduleFile, ConcurrentCreatesNeverLoseALine) {
  TempDir dir("schedule_book_test_");
  const std::string file = dir / "backup_schedules.txt";
  write_text_file(file, "# shared\n");
  constexpr int kThreads = 4;
  constexpr int kEach = 15;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        add_schedule(file, dir.path() + ";10:00;t" + std::to_string(t) + "_" + std::to_string(i), "/");
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  const ScheduleBook book = load_schedule_book(file);
  EXPECT_EQ(book.size(), static_cast<std::size_t>(kThreads * kEach));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      EXPECT_TRUE(book.find("t" + std::to_string(t) + "_" + std::to_string(i))) << t << " " << i;
    }
  }
  EXPECT_EQ(book.serialize().rfind("# shared\n", 0), 0u);
}

}  // namespace
}  // namespace mybackup
