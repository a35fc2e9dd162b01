#include "mybackup/util/open_directories.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::TempDir;

class OpenDirectoriesTest : public ::testing::Test {
 protected:
  /// A real open directory (any will do: the cache only holds descriptors).
  EnvFd open_one() { return EnvFd(env_, ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); }

  /// Whether `fd` is still an open descriptor.
  static bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

  Env& env_ = Env::default_env();
  TempDir dir_;
};

TEST_F(OpenDirectoriesTest, FindsWhatItKeepsAndNothingElse) {
  OpenDirectories cache(4);
  EXPECT_EQ(cache.find("/a/b"), -1);
  const int fd = cache.keep("/a/b", open_one());
  EXPECT_EQ(cache.find("/a/b"), fd);
  EXPECT_EQ(cache.find("/a"), -1);
  EXPECT_EQ(cache.find("/a/b/"), -1);
}

TEST_F(OpenDirectoriesTest, TheNearestAncestorIsTheLongestKeptPrefixEndingAtASlash) {
  OpenDirectories cache(4);
  const int root = cache.keep("/", open_one());
  const int a = cache.keep("/a", open_one());
  const int ab = cache.keep("/a/b", open_one());

  const std::string deep = "/a/b/c/d";
  OpenDirectories::Ancestor found = cache.nearest_ancestor(deep);
  EXPECT_EQ(found.fd, ab);
  EXPECT_EQ(found.rest, "c/d");
  const std::string sibling = "/a/bc";  // "/a/b" is not an ancestor of "/a/bc"
  found = cache.nearest_ancestor(sibling);
  EXPECT_EQ(found.fd, a);
  EXPECT_EQ(found.rest, "bc");
  const std::string elsewhere = "/x";
  found = cache.nearest_ancestor(elsewhere);
  EXPECT_EQ(found.fd, root);
  EXPECT_EQ(found.rest, "x");
  const std::string itself = "/a/b";  // not its own ancestor
  found = cache.nearest_ancestor(itself);
  EXPECT_EQ(found.fd, a);
  EXPECT_EQ(found.rest, "b");
}

TEST_F(OpenDirectoriesTest, RelativePathsHaveAncestorsToo) {
  OpenDirectories cache(4);
  const int docs = cache.keep("docs", open_one());
  const std::string below = "docs/a/b";
  const std::string beside = "docsx/a";
  const std::string other = "other";
  EXPECT_EQ(cache.nearest_ancestor(below).fd, docs);
  EXPECT_EQ(cache.nearest_ancestor(below).rest, "a/b");
  EXPECT_EQ(cache.nearest_ancestor(beside).fd, -1);
  EXPECT_EQ(cache.nearest_ancestor(other).fd, -1);
}

TEST_F(OpenDirectoriesTest, WhenFullTheLeastRecentlyUsedIsClosed) {
  OpenDirectories cache(2);
  const int a = cache.keep("/a", open_one());
  const int b = cache.keep("/b", open_one());
  EXPECT_EQ(cache.find("/a"), a);  // /b is now the least recently used
  const int c = cache.keep("/c", open_one());

  EXPECT_EQ(cache.find("/b"), -1);
  EXPECT_EQ(cache.find("/a"), a);
  EXPECT_EQ(cache.find("/c"), c);
  EXPECT_TRUE(is_open(a));
  EXPECT_TRUE(b == c || !is_open(b));  // closed (its number may have been reused for /c)

  cache.clear();
  EXPECT_FALSE(is_open(a));
  EXPECT_EQ(cache.find("/a"), -1);
}

}  // namespace
}  // namespace mybackup
