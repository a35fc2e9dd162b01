#include "mybackup/repository/object_names.hpp"
#include "mybackup/engine/verify.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fault_backend.hpp"
#include "mybackup/engine/backup.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/catalog/replay.hpp"
#include "test_util.hpp"

namespace mybackup {
namespace {

using testing::FaultInjectingBackend;
using testing::TempDir;

/// Counts the reads of pack bytes, to prove what a check reads.
class CountingBackend : public FaultInjectingBackend {
 public:
  using FaultInjectingBackend::FaultInjectingBackend;
  Bytes get(const std::string& key, std::uint64_t max_size) const override {
    count(key);
    return FaultInjectingBackend::get(key, max_size);
  }
  Bytes get_range(const std::string& key, std::uint64_t offset, std::uint64_t length) const override {
    count(key);
    return FaultInjectingBackend::get_range(key, offset, length);
  }
  mutable std::atomic<int> pack_reads{0};

 private:
  void count(const std::string& key) const {
    if (key.starts_with("data/")) {
      ++pack_reads;
    }
  }
};

std::vector<AffectedVersion> versions(std::initializer_list<std::pair<std::string, std::uint32_t>> list) {
  std::vector<AffectedVersion> out;
  for (const auto& [path, number] : list) {
    out.push_back({path, number});
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<VerifyProblemKind> kinds_of(const VerifyReport& report) {
  std::vector<VerifyProblemKind> kinds;
  for (const VerifyProblem& problem : report.problems) {
    kinds.push_back(problem.kind);
  }
  return kinds;
}

std::string describe(const VerifyReport& report) {
  std::string text;
  for (const VerifyProblem& problem : report.problems) {
    text += std::string(to_string(problem.kind)) + " pack=" + problem.pack + " chunk=" + problem.chunk +
            " manifest=" + problem.manifest + ": " + problem.detail + " [";
    for (const AffectedVersion& version : problem.affected) {
      text += version.path + "#" + std::to_string(version.number) + " ";
    }
    text += "] secondary=" + std::string(to_string(problem.secondary)) + "\n";
  }
  return text;
}

const VerifyProblem* find(const VerifyReport& report, VerifyProblemKind kind) {
  for (const VerifyProblem& problem : report.problems) {
    if (problem.kind == kind) {
      return &problem;
    }
  }
  return nullptr;
}

class Verify : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(src_.c_str(), 0755), 0);
    auto owned = std::make_unique<CountingBackend>(make_local_backend(dest_));
    counter_ = owned.get();
    repo_ = Repository::open(std::move(owned), key_, CreateIfMissing::yes);
    catalog_ = std::make_unique<Catalog>(dir_ / "backups.db");
  }

  std::string src(const std::string& name) const { return src_ + "/" + name; }

  void write(const std::string& name, const Bytes& data) const {
    testing::write_text_file(src(name), std::string(as_text(data)));
  }

  void backup() {
    BackupTarget target;
    target.keys = &repo_->keys();
    target.chunker = repo_->info().chunker;
    target.repository = repo_.get();
    BackupOptions options;
    options.sources = {{src_, {}}};
    options.threads = 2;
    run_backup(*catalog_, target, options);
  }

  /// Two runs, each in a pack of its own: a.bin and b.txt, then a.bin changed and c.bin added.
  void two_runs() {
    write("a.bin", testing::random_data(120'000, 1));
    write("b.txt", testing::to_bytes("bravo"));
    backup();
    write("a.bin", testing::random_data(90'000, 2));
    write("c.bin", testing::random_data(50'000, 3));
    backup();
  }

  VerifyReport verify(bool read_data = false, double subset = 100, const Repository* secondary = nullptr,
                      const Catalog* catalog = nullptr) {
    VerifyOptions options;
    options.read_data = read_data;
    options.subset_percent = subset;
    options.secondary = secondary;
    options.scratch_directory = dir_.path();
    return verify_repository(catalog != nullptr ? *catalog : *catalog_, *repo_, options);
  }

  /// The chunks of version `number` of src/name.
  std::vector<ChunkLocation> chunks_of(const std::string& name, std::uint32_t number) const {
    for (const VersionRecord& version : catalog_->versions_of(src(name))) {
      if (version.number == number) {
        return catalog_->chunks_of(version.id);
      }
    }
    ADD_FAILURE() << "no version " << number << " of " << name;
    return {};
  }

  std::string pack_file(const std::string& pack) const { return dest_ + "/" + object_names::pack(pack); }

  static void flip_byte(const std::string& path, std::uint64_t offset) {
    std::string bytes = testing::read_text_file(path);
    ASSERT_LT(offset, bytes.size());
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);  // packs are stored read-only
    testing::write_text_file(path, bytes);
  }

  /// Other files in the directory, to prove nothing was written.
  std::string snapshot() const {
    std::string text;
    for (const std::string& file : testing::files_under(dest_)) {
      text += file + " " + std::to_string(std::filesystem::file_size(dest_ + "/" + file)) + "\n";
    }
    return text;
  }

  TempDir dir_{"verify_test_"};
  std::string src_ = dir_ / "src";
  std::string dest_ = dir_ / "dest";
  MasterKey key_ = MasterKey::generate();
  CountingBackend* counter_ = nullptr;  // owned by repo_
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(Verify, ACleanRepositoryHasNoProblem) {
  two_runs();
  const std::string before = snapshot();
  const CatalogSummary summary = catalog_->summary();

  const VerifyReport quick = verify();
  EXPECT_TRUE(quick.problems.empty()) << describe(quick);
  EXPECT_TRUE(quick.ok());
  EXPECT_EQ(quick.packs_referenced, summary.packs);
  EXPECT_EQ(quick.packs_on_destination, summary.packs);
  EXPECT_EQ(quick.manifests_checked, 2U);
  EXPECT_TRUE(quick.catalog_compared);
  EXPECT_EQ(quick.versions_compared, catalog_->all_versions().size());
  EXPECT_EQ(quick.packs_read, 0U);
  EXPECT_EQ(quick.bytes_read, 0U);

  const VerifyReport full = verify(true);
  EXPECT_TRUE(full.problems.empty()) << describe(full);
  EXPECT_EQ(full.packs_read, summary.packs);
  EXPECT_EQ(full.bytes_read, summary.stored_bytes);
  EXPECT_EQ(full.chunks_checked, summary.chunks);

  EXPECT_EQ(snapshot(), before);  // nothing written to the destination
  EXPECT_EQ(catalog_->summary().runs, summary.runs);
  // The temporary catalog is gone.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().rfind("mybackup-verify-", 0), std::string::npos) << entry.path();
  }
}

TEST_F(Verify, AMissingPackNamesTheFileVersionsItHeld) {
  two_runs();
  const std::string pack = chunks_of("c.bin", 1).at(0).pack;  // run 2's pack: a.bin v2 and c.bin v1
  ASSERT_EQ(::unlink(pack_file(pack).c_str()), 0);

  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(kinds_of(report), std::vector<VerifyProblemKind>{VerifyProblemKind::missing_pack}) << describe(report);
  EXPECT_EQ(report.problems[0].pack, pack);
  EXPECT_EQ(report.problems[0].affected, versions({{src("a.bin"), 2}, {src("c.bin"), 1}}));

  // Reading data skips what is missing and finds the rest intact.
  const VerifyReport full = verify(true);
  EXPECT_EQ(kinds_of(full), std::vector<VerifyProblemKind>{VerifyProblemKind::missing_pack}) << describe(full);
  EXPECT_EQ(full.packs_read, 1U);
}

TEST_F(Verify, ATruncatedPackHasTheWrongSize) {
  two_runs();
  const std::string pack = chunks_of("b.txt", 1).at(0).pack;  // run 1's pack: a.bin v1 and b.txt v1
  const auto size = std::filesystem::file_size(pack_file(pack));
  std::filesystem::resize_file(pack_file(pack), size - 100);

  const VerifyReport report = verify();
  ASSERT_EQ(kinds_of(report), std::vector<VerifyProblemKind>{VerifyProblemKind::wrong_size}) << describe(report);
  EXPECT_EQ(report.problems[0].pack, pack);
  EXPECT_EQ(report.problems[0].affected, versions({{src("a.bin"), 1}, {src("b.txt"), 1}}));
  EXPECT_NE(report.problems[0].detail.find(std::to_string(size - 100)), std::string::npos) << report.problems[0].detail;
}

TEST_F(Verify, AFlippedByteInABlobIsFoundByReadingTheDataOnly) {
  two_runs();
  const ChunkLocation chunk = chunks_of("c.bin", 1).at(0);
  flip_byte(pack_file(chunk.pack), chunk.entry.offset + kBlobOverhead);

  counter_->pack_reads = 0;
  const VerifyReport quick = verify();
  EXPECT_TRUE(quick.ok()) << describe(quick);  // sizes and manifests are all right
  EXPECT_EQ(counter_->pack_reads.load(), 0);   // and not one pack byte was read
  EXPECT_EQ(quick.bytes_read, 0U);

  const VerifyReport full = verify(true);
  EXPECT_FALSE(full.ok());
  EXPECT_EQ(kinds_of(full),
            (std::vector<VerifyProblemKind>{VerifyProblemKind::damaged_pack, VerifyProblemKind::damaged_chunk}))
      << describe(full);
  const VerifyProblem* damaged = find(full, VerifyProblemKind::damaged_chunk);
  ASSERT_NE(damaged, nullptr);
  EXPECT_EQ(damaged->pack, chunk.pack);
  EXPECT_EQ(damaged->chunk, to_hex(chunk.entry.id));
  EXPECT_EQ(damaged->affected, versions({{src("c.bin"), 1}}));  // a.bin v2 in the same pack is intact
  ASSERT_NE(find(full, VerifyProblemKind::damaged_pack), nullptr);
  EXPECT_EQ(find(full, VerifyProblemKind::damaged_pack)->pack, chunk.pack);
}

TEST_F(Verify, AFlippedByteInAPackHeaderIsFound) {
  two_runs();
  const std::string pack = chunks_of("b.txt", 1).at(0).pack;
  flip_byte(pack_file(pack), std::filesystem::file_size(pack_file(pack)) - 10);  // inside the sealed header

  const VerifyReport report = verify(true);
  EXPECT_EQ(kinds_of(report),
            (std::vector<VerifyProblemKind>{VerifyProblemKind::damaged_pack, VerifyProblemKind::damaged_header}))
      << describe(report);
  ASSERT_NE(find(report, VerifyProblemKind::damaged_header), nullptr);
  EXPECT_EQ(find(report, VerifyProblemKind::damaged_header)->pack, pack);
  EXPECT_TRUE(find(report, VerifyProblemKind::damaged_header)->affected.empty());  // the chunks themselves are intact
}

TEST_F(Verify, AManifestMissingFromTheDestinationIsADisagreement) {
  two_runs();
  const std::vector<std::string> manifests = repo_->manifest_keys();
  ASSERT_EQ(manifests.size(), 2U);
  ASSERT_EQ(::unlink((dest_ + "/" + manifests[1]).c_str()), 0);

  const VerifyReport report = verify();
  EXPECT_FALSE(report.ok());
  const VerifyProblem* missing = find(report, VerifyProblemKind::missing_manifest);
  ASSERT_NE(missing, nullptr) << describe(report);
  EXPECT_EQ(missing->manifest, manifests[1]);
  // Run 2's versions are in the catalog and in no manifest; its pack is still indexed by the
  // catalog only.
  const VerifyProblem* mismatch = nullptr;
  for (const VerifyProblem& problem : report.problems) {
    if (problem.kind == VerifyProblemKind::catalog_mismatch && problem.pack.empty()) {
      mismatch = &problem;
    }
  }
  ASSERT_NE(mismatch, nullptr) << describe(report);
  const auto named = [&](const std::string& name, std::uint32_t number) {
    return std::count(mismatch->affected.begin(), mismatch->affected.end(), AffectedVersion{src(name), number}) == 1;
  };
  EXPECT_TRUE(named("a.bin", 2) && named("c.bin", 1)) << describe(report);
  EXPECT_FALSE(named("a.bin", 1) || named("b.txt", 1)) << describe(report);
  EXPECT_EQ(report.count(VerifyProblemKind::catalog_mismatch), 2U) << describe(report);  // the versions, run 2's pack
  EXPECT_EQ(report.manifests_checked, 1U);
}

TEST_F(Verify, ACatalogBehindTheDestinationIsReported) {
  two_runs();
  Catalog behind(dir_ / "behind.db");
  ASSERT_EQ(replay_new_manifests(behind, *repo_, 1).replayed, 1U);  // knows run 1 only

  const VerifyReport report = verify(false, 100, nullptr, &behind);
  EXPECT_FALSE(report.ok());
  const VerifyProblem* unrecorded = find(report, VerifyProblemKind::unrecorded_manifest);
  ASSERT_NE(unrecorded, nullptr) << describe(report);
  EXPECT_EQ(unrecorded->manifest, repo_->manifest_keys()[1]);
  EXPECT_EQ(report.count(VerifyProblemKind::catalog_mismatch), 0U) << describe(report);  // run 1 agrees
  EXPECT_EQ(report.count(VerifyProblemKind::unreferenced_pack), 1U);  // run 2's pack
  EXPECT_EQ(report.manifests_checked, 2U);  // the unrecorded one was read too
  EXPECT_TRUE(verify().ok());  // the up-to-date catalog
}

TEST_F(Verify, ACatalogThatRecordsAVersionDifferentlyIsADisagreement) {
  two_runs();
  // A catalog built from the same manifests, except that one version's content differs.
  Catalog altered(dir_ / "altered.db");
  for (const std::string& key : repo_->manifest_keys()) {
    Manifest manifest = repo_->read_manifest(key);
    for (ManifestVersion& version : manifest.versions) {
      if (version.path == src("b.txt")) {
        version.sha256[0] ^= 1;
      }
    }
    altered.record_run(manifest, key, RunStats{});
  }

  const VerifyReport report = verify(false, 100, nullptr, &altered);
  ASSERT_EQ(kinds_of(report), std::vector<VerifyProblemKind>{VerifyProblemKind::catalog_mismatch}) << describe(report);
  EXPECT_EQ(report.problems[0].affected, versions({{src("b.txt"), 1}}));
  EXPECT_NE(report.problems[0].detail.find("recorded differently"), std::string::npos) << describe(report);
}

// The totals status reads are kept apart from the rows they sum: if they ever drift, verify says so.
TEST_F(Verify, TotalsThatDriftFromTheRowsAreADisagreement) {
  two_runs();
  const std::string path = dir_ / "drifted.db";
  Catalog drifted(path);
  for (const std::string& key : repo_->manifest_keys()) {
    drifted.record_run(repo_->read_manifest(key), key, RunStats{});
  }
  EXPECT_TRUE(verify(false, 100, nullptr, &drifted).ok());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE folder_totals SET files = files + 1", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);

  const VerifyReport report = verify(false, 100, nullptr, &drifted);
  ASSERT_EQ(kinds_of(report), std::vector<VerifyProblemKind>{VerifyProblemKind::catalog_mismatch}) << describe(report);
  EXPECT_NE(report.problems[0].detail.find("totals"), std::string::npos) << describe(report);
}

TEST_F(Verify, AHeaderThatDisagreesWithTheCatalogIsReported) {
  two_runs();
  // A catalog whose index says one chunk of run 1's pack is a byte longer than it is.
  Catalog altered(dir_ / "altered.db");
  ChunkId changed{};
  for (const std::string& key : repo_->manifest_keys()) {
    Manifest manifest = repo_->read_manifest(key);
    if (manifest.seq == 1) {
      changed = manifest.packs.at(0).blobs.at(0).id;
      ++manifest.packs[0].blobs[0].raw_length;
    }
    altered.record_run(manifest, key, RunStats{});
  }

  const VerifyReport report = verify(true, 100, nullptr, &altered);
  const VerifyProblem* mismatch = find(report, VerifyProblemKind::header_mismatch);
  ASSERT_NE(mismatch, nullptr) << describe(report);
  EXPECT_EQ(mismatch->chunk, to_hex(changed));
  EXPECT_EQ(report.count(VerifyProblemKind::header_mismatch), 1U) << describe(report);
  // The chunk does not decompress to the recorded length either, and the catalog disagrees with
  // the manifests about that pack.
  const VerifyProblem* damaged = find(report, VerifyProblemKind::damaged_chunk);
  const VerifyProblem* disagreement = find(report, VerifyProblemKind::catalog_mismatch);
  ASSERT_TRUE(damaged != nullptr && disagreement != nullptr) << describe(report);
  EXPECT_EQ(damaged->chunk, to_hex(changed));
  EXPECT_EQ(disagreement->pack, mismatch->pack);
  EXPECT_EQ(report.count(VerifyProblemKind::damaged_pack), 0U) << describe(report);  // the pack itself is intact
}

TEST_F(Verify, ADamagedManifestIsReported) {
  two_runs();
  const std::string manifest = dest_ + "/" + repo_->manifest_keys()[0];
  flip_byte(manifest, std::filesystem::file_size(manifest) / 2);

  const VerifyReport report = verify();
  const VerifyProblem* damaged = find(report, VerifyProblemKind::damaged_manifest);
  ASSERT_NE(damaged, nullptr) << describe(report);
  EXPECT_EQ(damaged->manifest, repo_->manifest_keys()[0]);
  EXPECT_FALSE(report.catalog_compared);
  EXPECT_FALSE(report.ok());
}

TEST_F(Verify, AnUnreferencedPackIsOnlyAWarning) {
  two_runs();
  PackBuilder builder(kDefaultPackTargetSize);
  Bytes blob;
  const Bytes data = testing::to_bytes("left by an interrupted run");
  const ChunkId id = repo_->chunk_id(data);
  seal_blob(repo_->keys().enc_key, id, 0, data, blob);
  builder.add(id, blob, static_cast<std::uint32_t>(data.size()), 0);
  const FinishedPack orphan = builder.finish(repo_->keys().enc_key);
  repo_->put_pack(orphan);

  const VerifyReport report = verify(true);
  ASSERT_EQ(kinds_of(report), std::vector<VerifyProblemKind>{VerifyProblemKind::unreferenced_pack}) << describe(report);
  EXPECT_EQ(report.problems[0].pack, orphan.name);
  EXPECT_EQ(severity(report.problems[0].kind), Severity::warning);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.warnings(), 1U);
  EXPECT_EQ(report.packs_on_destination, report.packs_referenced + 1);
}

TEST_F(Verify, ASubsetReadsRoughlyTheRequestedShareAtRandom) {
  for (std::uint32_t run = 0; run < 10; ++run) {
    write("f" + std::to_string(run), testing::random_data(2'000 + 100 * run, run));
    backup();
  }
  ASSERT_EQ(catalog_->summary().packs, 10U);
  std::set<std::uint64_t> bytes_seen;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    VerifyOptions options;
    options.read_data = true;
    options.subset_percent = 30;
    options.seed = seed;
    options.scratch_directory = dir_.path();
    const VerifyReport report = verify_repository(*catalog_, *repo_, options);
    EXPECT_TRUE(report.ok()) << describe(report);
    EXPECT_EQ(report.packs_read, 3U);
    bytes_seen.insert(report.bytes_read);
  }
  EXPECT_GT(bytes_seen.size(), 1U);  // the packs drawn differ from one seed to another
  EXPECT_EQ(verify(true, 1).packs_read, 1U);  // at least one pack
  EXPECT_EQ(verify(true, 55).packs_read, 6U);  // rounded up
  EXPECT_EQ(verify(true, 100).packs_read, 10U);
  for (const double invalid : {0.0, -5.0, 100.5}) {
    EXPECT_EQ(testing::error_kind([&] { verify(true, invalid); }), ErrorKind::usage) << invalid;
  }
}

TEST_F(Verify, TheSecondarySaysWhetherAnIntactCopyExists) {
  two_runs();
  const std::string mirror = dir_ / "mirror";
  std::filesystem::copy(dest_, mirror, std::filesystem::copy_options::recursive);
  const std::unique_ptr<Repository> secondary =
      Repository::open(make_local_backend(mirror), key_, CreateIfMissing::no);

  const std::string missing = chunks_of("b.txt", 1).at(0).pack;
  const ChunkLocation damaged = chunks_of("c.bin", 1).at(0);
  ASSERT_EQ(::unlink(pack_file(missing).c_str()), 0);
  flip_byte(pack_file(damaged.pack), damaged.entry.offset + kBlobOverhead);

  VerifyReport report = verify(true, 100, secondary.get());
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(report.count(VerifyProblemKind::missing_pack), 1U) << describe(report);
  ASSERT_EQ(report.count(VerifyProblemKind::damaged_chunk), 1U) << describe(report);
  for (const VerifyProblem& problem : report.problems) {
    EXPECT_EQ(problem.secondary, SecondaryCopy::intact) << describe(report);
  }

  // Damaged there too, or gone from there as well.
  flip_byte(mirror + "/" + object_names::pack(damaged.pack), 3);
  ASSERT_EQ(::unlink((mirror + "/" + object_names::pack(missing)).c_str()), 0);
  report = verify(true, 100, secondary.get());
  ASSERT_TRUE(find(report, VerifyProblemKind::missing_pack) && find(report, VerifyProblemKind::damaged_chunk))
      << describe(report);
  EXPECT_EQ(find(report, VerifyProblemKind::missing_pack)->secondary, SecondaryCopy::missing) << describe(report);
  EXPECT_EQ(find(report, VerifyProblemKind::damaged_chunk)->secondary, SecondaryCopy::damaged) << describe(report);

  // Without a secondary nothing is consulted.
  report = verify(true);
  ASSERT_NE(find(report, VerifyProblemKind::damaged_chunk), nullptr) << describe(report);
  EXPECT_EQ(find(report, VerifyProblemKind::damaged_chunk)->secondary, SecondaryCopy::not_checked);
}

TEST_F(Verify, ACancelStopsTheCheck) {
  two_runs();
  std::atomic<bool> cancel{true};
  VerifyOptions options;
  options.cancel = &cancel;
  options.scratch_directory = dir_.path();
  EXPECT_EQ(testing::error_kind([&] { verify_repository(*catalog_, *repo_, options); }), ErrorKind::interrupted);
}

TEST(VerifyCatalog, CursorsAndUsesFollowTheCatalog) {
  TempDir dir("verify_catalog_");
  Catalog catalog(dir / "backups.db");
  const ChunkId one = Sha256::hash(testing::to_bytes("one"));
  const ChunkId two = Sha256::hash(testing::to_bytes("two"));
  const ChunkId three = Sha256::hash(testing::to_bytes("three"));
  const std::string first = to_hex(Sha256::hash(testing::to_bytes("first pack")));
  const std::string second = to_hex(Sha256::hash(testing::to_bytes("second pack")));
  Manifest manifest;
  manifest.seq = 1;
  manifest.packs = {{second, 500, {{three, 0, 100, 90, 1}}},
                    {first, 1000, {{two, 100, 100, 90, 0}, {one, 0, 100, 90, 0}}}};
  ManifestVersion a;
  a.path = "/a";
  a.number = 1;
  a.mode = 0640;
  a.mtime_ns = 99;
  a.size = 270;
  a.inode = 4242;
  a.sha256 = Sha256::hash(testing::to_bytes("a"));
  a.chunks = {one, two, one};
  ManifestVersion directory;
  directory.path = "/d";
  directory.type = EntryType::directory;
  directory.number = 1;
  ManifestVersion b = a;
  b.path = "/b";
  b.chunks = {three};
  ManifestVersion a2 = a;
  a2.number = 2;
  a2.chunks = {two};
  manifest.versions = {directory, b, a, a2};
  catalog.record_run(manifest, "snapshots/0000000001-0123456789abcdef.enc", RunStats{});
  catalog.record_run(Manifest{}, "", RunStats{});  // a run that changed nothing has no manifest

  std::vector<std::string> order;
  const auto versions = catalog.version_cursor();
  for (ManifestVersion version; versions->next(version);) {
    order.push_back(version.path + "#" + std::to_string(version.number) + ":" + std::to_string(version.chunks.size()));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"/a#1:3", "/a#2:1", "/b#1:1", "/d#1:0"}));
  ManifestVersion after;
  EXPECT_FALSE(versions->next(after));
  // Each version comes back as its manifest recorded it, inode included.
  std::vector<ManifestVersion> read;
  const auto again = catalog.version_cursor();
  for (ManifestVersion version; again->next(version);) {
    read.push_back(version);
  }
  EXPECT_TRUE(read == (std::vector<ManifestVersion>{a, a2, b, directory}));

  std::vector<ManifestPack> packs;
  const auto cursor = catalog.pack_cursor();
  for (ManifestPack pack; cursor->next(pack);) {
    packs.push_back(pack);
  }
  ASSERT_EQ(packs.size(), 2U);
  EXPECT_EQ(packs[0].name, std::min(first, second));
  const ManifestPack& first_index = packs[0].name == first ? packs[0] : packs[1];
  ASSERT_EQ(first_index.blobs.size(), 2U);
  EXPECT_EQ(first_index.blobs[0].id, one);  // by offset
  EXPECT_EQ(first_index.size, 1000U);

  std::vector<std::string> uses;
  for (const ChunkUse& use : catalog.versions_using({second}, {two})) {
    uses.push_back(use.pack.substr(0, 4) + " " + use.path + "#" + std::to_string(use.number));
  }
  std::sort(uses.begin(), uses.end());
  std::vector<std::string> expected = {first.substr(0, 4) + " /a#1", first.substr(0, 4) + " /a#2",
                                       second.substr(0, 4) + " /b#1"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(uses, expected);
  EXPECT_TRUE(catalog.versions_using({}, {}).empty());

  const std::vector<RecordedManifest> recorded = catalog.recorded_manifests();
  ASSERT_EQ(recorded.size(), 1U);
  EXPECT_EQ(recorded[0].seq, 1U);
  EXPECT_EQ(recorded[0].key, "snapshots/0000000001-0123456789abcdef.enc");
}


TEST(VerifyReportJson, CountsProblemsByKindAndSeverity) {
  VerifyReport report;
  VerifyProblem chunk;
  chunk.kind = VerifyProblemKind::damaged_chunk;
  chunk.pack = "p1";
  chunk.affected = {{"/src/a", 2}};
  VerifyProblem stray;
  stray.kind = VerifyProblemKind::unreferenced_pack;
  stray.pack = "p2";
  report.problems = {chunk, stray, chunk};
  const nlohmann::ordered_json json = report;
  EXPECT_EQ(json.at("ok"), false);
  EXPECT_EQ(json.at("errors"), 2);
  EXPECT_EQ(json.at("warnings"), 1);
  const nlohmann::ordered_json& by_kind = json.at("problems_by_kind");
  ASSERT_EQ(by_kind.size(), 2U) << by_kind;
  EXPECT_EQ(by_kind.begin().key(), "damaged_chunk") << "sorted by kind";
  EXPECT_EQ(by_kind.at("damaged_chunk"), 2);
  EXPECT_EQ(by_kind.at("unreferenced_pack"), 1);
  const nlohmann::ordered_json& problems = json.at("problems");
  ASSERT_EQ(problems.size(), 3U);
  EXPECT_EQ(problems[0].at("kind"), "damaged_chunk");
  EXPECT_EQ(problems[0].at("severity"), "error");
  EXPECT_EQ(problems[0].at("secondary"), "not_checked");
  EXPECT_EQ(problems[0].at("affected"), nlohmann::ordered_json::parse(R"([{"path": "/src/a", "version": 2}])"));
  EXPECT_EQ(problems[1].at("severity"), "warning");

  EXPECT_EQ(nlohmann::ordered_json(VerifyReport{}).at("problems_by_kind"), nlohmann::ordered_json::object());
  EXPECT_EQ(nlohmann::ordered_json(VerifyReport{}).at("ok"), true);
}

}  // namespace
}  // namespace mybackup
