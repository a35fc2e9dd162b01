// Every object name of a repository is made and parsed in object_names.hpp: round trips, and
// refusal of everything that is not exactly one of ours.

#include "mybackup/repository/object_names.hpp"

#include <gtest/gtest.h>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::error_kind;

TEST(ObjectNames, PacksRoundTripAndOnlyWellFormedNamesParse) {
  const std::string name = to_hex(Sha256::hash(as_bytes("pack")));
  EXPECT_EQ(object_names::pack(name), "data/" + name.substr(0, 2) + "/" + name + ".enc");
  EXPECT_EQ(object_names::parse_pack(object_names::pack(name)), name);
  std::string upper = name;
  upper[5] = 'A';
  for (const std::string& object :
       {std::string("data/") + name.substr(0, 2) + "/" + name, "data/" + name.substr(0, 2) + "/" + name + ".enc.tmp",
        "data/zz/" + name + ".enc", "data/" + name + ".enc", "data/" + upper.substr(0, 2) + "/" + upper + ".enc",
        "snapshots/" + name.substr(0, 2) + "/" + name + ".enc", "data/" + name.substr(0, 2) + "/" + name.substr(1) + ".enc",
        std::string("data/ab/short.enc"), std::string("")}) {
    EXPECT_FALSE(object_names::parse_pack(object).has_value()) << object;
  }
  EXPECT_EQ(error_kind([] { object_names::pack("not hex"); }), ErrorKind::usage);
}

TEST(ObjectNames, ManifestsRoundTrip) {
  EXPECT_EQ(object_names::manifest(42, "0123456789abcdef"), "snapshots/0000000042-0123456789abcdef.enc");
  EXPECT_EQ(object_names::parse_manifest("snapshots/0000000042-0123456789abcdef.enc"), 42U);
  EXPECT_EQ(object_names::parse_manifest(object_names::manifest(9'999'999'999ULL, "ab")), 9'999'999'999ULL);
  EXPECT_EQ(error_kind([] { object_names::manifest(0, "ab"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { object_names::manifest(1, "../x"); }), ErrorKind::usage);
}

TEST(ObjectNames, OtherNamesAreNotManifests) {
  for (const char* key :
       {"", "snapshots/", "snapshots/0000000042", "snapshots/0000000042-", "snapshots/0000000042-x.enc.tmp",
        "snapshots/0000000042.enc", "snapshots/000000004a-ab.enc", "snapshots/-000000042-ab.enc",
        "snapshots/0000000042-ab.txt", "data/0000000042-ab.enc", "snapshot/0000000042-ab.enc",
        "snapshots/00000000042-ab.enc", "snapshots/0000000000-ab.enc", "snapshots/0000000042-AB.enc",
        "snapshots/0000000042-x.enc", "snapshots/sub/0000000042-ab.enc", "mybackup-repo.json", "locks/writer.json"}) {
    EXPECT_FALSE(object_names::parse_manifest(key).has_value()) << key;
  }
}

TEST(ObjectNames, LocksAndWrappedKeys) {
  EXPECT_EQ(object_names::lock("0123456789abcdef"), "locks/0123456789abcdef.json");
  EXPECT_TRUE(object_names::is_lock("locks/0123456789abcdef.json"));
  for (const char* object : {"locks/writer.json", "locks/0123456789abcdef.json.tmp", "locks/0123456789abcde.json",
                                   "keys/0123456789abcdef.json", "locks/sub/0123456789abcdef.json"}) {
    EXPECT_FALSE(object_names::is_lock(object)) << object;
  }
  EXPECT_EQ(object_names::wrapped_key("fedcba9876543210"), "keys/fedcba9876543210.json");
  EXPECT_EQ(object_names::parse_wrapped_key("keys/fedcba9876543210.json"), "fedcba9876543210");
  EXPECT_FALSE(object_names::parse_wrapped_key("keys/notakey.json").has_value());
  EXPECT_FALSE(object_names::parse_wrapped_key("locks/fedcba9876543210.json").has_value());
  EXPECT_EQ(error_kind([] { object_names::lock("../../etc"); }), ErrorKind::usage);
  EXPECT_EQ(error_kind([] { object_names::wrapped_key("x"); }), ErrorKind::usage);
}

}  // namespace
}  // namespace mybackup
