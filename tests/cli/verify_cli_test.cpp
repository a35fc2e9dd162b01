// End-to-end tests of `mybackup verify`: the built binary, run as a user would (see
// cli_harness.hpp), must find missing, truncated and damaged packs and manifests, name the file
// versions they affect, exit 1 for damage and 0 otherwise (warnings allowed), print one JSON object
// with --json, reject an invalid --subset as a usage error, and change nothing.

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_harness.hpp"

namespace mybackup_cli_test {
namespace {

class VerifyCliTest : public CliTest {
 protected:
  /// Every pack file under dest/data, as paths.
  std::vector<std::string> pack_files() const {
    std::vector<std::string> packs;
    for (const std::string& relative : files_below(dest_ + "/data")) {
      if (fs::path(relative).extension() == ".enc") {
        packs.push_back(dest_ + "/data/" + relative);
      }
    }
    std::sort(packs.begin(), packs.end());
    return packs;
  }

  static std::string name_of(const std::string& pack_path) { return fs::path(pack_path).stem().string(); }

  static void flip_byte(const std::string& path, std::uint64_t offset) {
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(offset));
    char byte = 0;
    file.get(byte);
    file.seekp(static_cast<std::streamoff>(offset));
    file.put(static_cast<char>(byte ^ 0x5a));
    ASSERT_TRUE(file.good()) << path;
  }

  /// The home and the destination, to prove a verify changed neither.
  std::string state() const { return listing(dest_) + read_text(config_path()); }
};

TEST_F(VerifyCliTest, AnIntactRepositoryPassesWithAndWithoutReadingData) {
  first_backup();
  const std::string before = state();

  const Result quick = run({"verify"});
  EXPECT_TRUE(succeeded(quick));
  EXPECT_TRUE(contains(quick.out, "Verified " + dest_)) << quick;
  EXPECT_TRUE(contains(quick.out, "metadata only")) << quick;
  EXPECT_TRUE(contains(quick.out, "1 referenced by the catalog, 1 pack on the destination")) << quick;
  EXPECT_EQ(lines_of(quick.out).back(), "OK: no damage found") << quick;
  EXPECT_EQ(quick.err, "") << "no progress when stderr is not a terminal" << quick;

  const Result full = run({"verify", "--read-data"});
  EXPECT_TRUE(succeeded(full));
  EXPECT_TRUE(contains(full.out, "all data read")) << full;
  EXPECT_TRUE(contains(full.out, "1 pack read")) << full;
  EXPECT_TRUE(contains(full.out, "3 chunks authenticated and re-hashed")) << full;

  const Result json = run({"verify", "--read-data", "--json"});
  EXPECT_TRUE(succeeded(json));
  ASSERT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["ok"], true) << json;
  EXPECT_EQ(json_of(json.out)["read_data"], true) << json;
  EXPECT_EQ(json_of(json.out)["packs_read"], 1) << json;
  EXPECT_EQ(json_of(json.out)["chunks_checked"], 3) << json;
  EXPECT_EQ(json_of(json.out)["manifests_checked"], 1) << json;
  EXPECT_EQ(json_of(json.out)["errors"], 0) << json;
  EXPECT_GT(json_of(json.out).value("bytes_read", 0), 0) << json;

  EXPECT_EQ(state(), before) << "verify changed the destination or the home";
  EXPECT_TRUE(lock_files().empty());
  EXPECT_TRUE(contains(read_text(log_path()), "verify: done")) << read_text(log_path());
}

TEST_F(VerifyCliTest, AMissingPackExitsOneAndNamesEveryFileVersion) {
  first_backup();
  const std::vector<std::string> packs = pack_files();
  ASSERT_EQ(packs.size(), 1U);
  ASSERT_EQ(::unlink(packs[0].c_str()), 0);

  const Result result = run({"verify"});
  EXPECT_EQ(result.code, 1) << result;
  EXPECT_TRUE(contains(result.out, "error: missing pack " + name_of(packs[0]) + ": missing from " + dest_)) << result;
  for (const std::string file : {"/a.txt", "/sub/b.txt", "/sub/c.bin"}) {
    EXPECT_TRUE(contains(result.out, src_ + file + " (version 1)")) << file << result;
  }
  EXPECT_EQ(lines_of(result.out).back().rfind("DAMAGED: 1 problem (1 missing pack); 3 file versions cannot be restored", 0),
            0U)
      << result;

  const Result json = run({"verify", "--json"});
  EXPECT_EQ(json.code, 1) << json;
  ASSERT_TRUE(is_one_json_object(json.out)) << json;
  EXPECT_EQ(json_of(json.out)["ok"], false) << json;
  EXPECT_EQ(json_of(json.out)["problems_by_kind"]["missing_pack"], 1) << json;
  EXPECT_EQ(json_of(json.out)["problems"][0]["kind"], "missing_pack") << json;
  EXPECT_EQ(json_of(json.out)["problems"][0]["pack"], name_of(packs[0])) << json;
  EXPECT_TRUE(contains(json.out, in_quotes(src_ + "/sub/c.bin"))) << json;
}

TEST_F(VerifyCliTest, ADamagedChunkIsFoundOnlyByReadingTheData) {
  first_backup();
  const std::vector<std::string> packs = pack_files();
  ASSERT_EQ(packs.size(), 1U);
  flip_byte(packs[0], 17);  // the first blob's first byte of ciphertext

  EXPECT_TRUE(succeeded(run({"verify"})));
  const Result result = run({"verify", "--read-data"});
  EXPECT_EQ(result.code, 1) << result;
  EXPECT_TRUE(contains(result.out, "error: damaged pack " + name_of(packs[0]))) << result;
  EXPECT_TRUE(contains(result.out, "error: damaged chunk ")) << result;
  EXPECT_TRUE(contains(result.out, "in pack " + name_of(packs[0]) + ": blob ")) << result;
  EXPECT_TRUE(contains(result.out, "failed authentication (damaged data or wrong key); damaged file versions: " +
                                       src_ + "/")) << result;
  EXPECT_TRUE(contains(lines_of(result.out).back(), "1 file version cannot be restored intact")) << result;

  const Result json = run({"verify", "--read-data", "--json"});
  EXPECT_EQ(json.code, 1) << json;
  EXPECT_EQ(json_of(json.out)["problems_by_kind"]["damaged_chunk"], 1) << json;
  EXPECT_EQ(json_of(json.out)["problems_by_kind"]["damaged_pack"], 1) << json;
}

TEST_F(VerifyCliTest, AnUnreferencedPackIsAWarningAndExitsZero) {
  first_backup();
  const std::string orphan = dest_ + "/data/ff/" + std::string(64, 'f') + ".enc";
  fs::create_directories(dest_ + "/data/ff");
  fs::copy_file(pack_files()[0], orphan);

  const Result result = run({"verify", "--read-data"});
  EXPECT_TRUE(succeeded(result));
  EXPECT_TRUE(contains(result.out, "warning: unreferenced pack " + std::string(64, 'f') +
                                       ": referenced by nothing (left by an interrupted run; `mybackup clean` removes it)"))
      << result;
  EXPECT_EQ(lines_of(result.out).back(), "OK: no damage found (1 warning)") << result;
}

TEST_F(VerifyCliTest, AMissingManifestIsADisagreement) {
  first_backup();
  write_text(src_ + "/a.txt", "alpha, second version\n");
  ASSERT_TRUE(succeeded(run({"backup"})));
  const std::vector<std::string> manifests = files_below(dest_ + "/snapshots");
  ASSERT_EQ(manifests.size(), 2U);
  const std::string last = *std::max_element(manifests.begin(), manifests.end());
  ASSERT_EQ(::unlink((dest_ + "/snapshots/" + last).c_str()), 0);

  const Result result = run({"verify"});
  EXPECT_EQ(result.code, 1) << result;
  EXPECT_TRUE(contains(result.out, "error: missing manifest snapshots/" + last)) << result;
  EXPECT_TRUE(contains(result.out, "error: catalog disagrees with the manifests: versions in the catalog that no manifest")) << result;
  EXPECT_TRUE(contains(result.out, src_ + "/a.txt (version 2)")) << result;
}

TEST_F(VerifyCliTest, TheSecondaryIsConsultedForWhatThePrimaryLost) {
  first_backup();
  const std::string mirror = root_ + "/mirror";
  fs::copy(dest_, mirror, fs::copy_options::recursive);
  ASSERT_TRUE(succeeded(run({"config", "set", "destinations.secondary", mirror})));
  const std::string pack = pack_files()[0];
  ASSERT_EQ(::unlink(pack.c_str()), 0);

  const Result result = run({"verify"});
  EXPECT_EQ(result.code, 1) << result;
  EXPECT_TRUE(contains(result.out, "missing from the primary, intact on the secondary " + mirror)) << result;
  EXPECT_TRUE(contains(lines_of(result.out).back(), "but every damaged pack is intact on the secondary")) << result;
  EXPECT_EQ(json_of(run({"verify", "--json"}).out)["secondary"], mirror);
}

TEST_F(VerifyCliTest, SubsetTakesAPercentageAndRejectsAnythingElse) {
  first_backup();
  for (const std::string subset : {"10%", "10", "100"}) {
    const Result json = run({"verify", "--read-data", "--subset", subset, "--json"});
    EXPECT_TRUE(succeeded(json)) << subset;
    EXPECT_EQ(json_of(json.out)["packs_read"], 1) << "at least one pack" << json;
  }
  EXPECT_TRUE(contains(run({"verify", "--read-data", "--subset", "10%"}).out, "data of a random 10% of the packs read"));
  for (const std::string subset : {"0", "0%", "101", "abc", "10%%", ""}) {
    EXPECT_TRUE(failed_with(run({"verify", "--read-data", "--subset", subset}), 2,
                            {"invalid --subset '" + subset + "'", "like 10% or 10"}))
        << subset;
  }
  EXPECT_TRUE(failed_with(run({"verify", "--subset", "10%"}), 2, {"add --read-data"}));
}

TEST_F(VerifyCliTest, BeforeAnyBackupThereIsNothingToVerify) {
  configure();
  const Result result = run({"verify"});
  EXPECT_TRUE(succeeded(result));
  EXPECT_TRUE(contains(result.out, "Nothing to verify")) << result;
}

}  // namespace
}  // namespace mybackup_cli_test
