#include "mybackup/engine/verify.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "mybackup/util/clock.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/catalog/replay.hpp"

namespace mybackup {

std::string_view to_string(VerifyProblemKind kind) {
  switch (kind) {
    case VerifyProblemKind::missing_pack: return "missing_pack";
    case VerifyProblemKind::wrong_size: return "wrong_size";
    case VerifyProblemKind::damaged_pack: return "damaged_pack";
    case VerifyProblemKind::damaged_header: return "damaged_header";
    case VerifyProblemKind::header_mismatch: return "header_mismatch";
    case VerifyProblemKind::damaged_chunk: return "damaged_chunk";
    case VerifyProblemKind::missing_manifest: return "missing_manifest";
    case VerifyProblemKind::unrecorded_manifest: return "unrecorded_manifest";
    case VerifyProblemKind::damaged_manifest: return "damaged_manifest";
    case VerifyProblemKind::manifest_gap: return "manifest_gap";
    case VerifyProblemKind::rolled_back: return "rolled_back";
    case VerifyProblemKind::catalog_mismatch: return "catalog_mismatch";
    case VerifyProblemKind::unreferenced_pack: return "unreferenced_pack";
  }
  return "unknown";
}

Severity severity(VerifyProblemKind kind) {
  return kind == VerifyProblemKind::unreferenced_pack ? Severity::warning : Severity::error;
}

std::string_view to_string(SecondaryCopy copy) {
  switch (copy) {
    case SecondaryCopy::not_checked: return "not_checked";
    case SecondaryCopy::intact: return "intact";
    case SecondaryCopy::missing: return "missing";
    case SecondaryCopy::damaged: return "damaged";
  }
  return "unknown";
}

std::uint64_t VerifyReport::count(VerifyProblemKind kind) const {
  return static_cast<std::uint64_t>(
      std::count_if(problems.begin(), problems.end(), [kind](const VerifyProblem& problem) { return problem.kind == kind; }));
}

std::uint64_t VerifyReport::errors() const {
  return static_cast<std::uint64_t>(std::count_if(problems.begin(), problems.end(), [](const VerifyProblem& problem) {
    return severity(problem.kind) == Severity::error;
  }));
}

std::uint64_t VerifyReport::warnings() const { return problems.size() - errors(); }

namespace {

/// A directory of its own under `parent`, removed with its contents when this goes away.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(std::string parent) {
    if (parent.empty()) {
      parent = temporary_directory();
    }
    std::string pattern = parent + "/mybackup-verify-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw_system_error(errno, "cannot create a temporary directory in " + parent +
                                    " for the rebuilt catalog (set TMPDIR to a writable directory)");
    }
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Verifier {
 public:
  Verifier(const Catalog& catalog, const Repository& primary, const VerifyOptions& options)
      : catalog_(catalog), primary_(primary), options_(options) {}

  VerifyReport run() {
    report_.started_ns = system_clock().now_ns();
    report_.read_data = options_.read_data;
    report_.subset_percent = options_.subset_percent;
    report_.secondary_consulted = options_.secondary != nullptr;

    load_catalog_packs();
    check_pack_sizes();
    check_manifest_sets();
    compare_with_manifests();
    if (options_.read_data) {
      read_packs();
    }
    name_affected_versions();
    consult_secondary();
    report_.finished_ns = system_clock().now_ns();
    return std::move(report_);
  }

 private:
  void progress(std::string_view stage, std::uint64_t done, std::uint64_t total) const {
    if (options_.on_progress) {
      options_.on_progress(VerifyProgress{stage, done, total});
    }
  }

  void check_cancel() const {
    if (options_.cancel != nullptr && options_.cancel->load()) {
      throw Error(ErrorKind::interrupted, "verify interrupted: nothing was changed; run `mybackup verify` again");
    }
  }

  VerifyProblem& add(VerifyProblemKind kind, std::string detail) {
    VerifyProblem problem;
    problem.kind = kind;
    problem.detail = std::move(detail);
    report_.problems.push_back(std::move(problem));
    return report_.problems.back();
  }

  void load_catalog_packs() {
    packs_ = catalog_.packs();
    report_.packs_referenced = packs_.size();
  }

  /// Every referenced pack exists with its recorded size; what nothing references is listed.
  void check_pack_sizes() {
    const std::vector<Repository::StoredPack> stored = primary_.list_packs();  // sorted by name, as packs_ is
    report_.packs_on_destination = stored.size();
    for (std::size_t i = 0; i < packs_.size(); ++i) {
      check_cancel();
      const ManifestPack& pack = packs_[i];
      const auto found = std::lower_bound(stored.begin(), stored.end(), pack.name,
                                          [](const Repository::StoredPack& a, const std::string& name) { return a.name < name; });
      const std::optional<std::uint64_t> size =
          found != stored.end() && found->name == pack.name ? std::optional<std::uint64_t>(found->size) : std::nullopt;
      if (!size) {
        add(VerifyProblemKind::missing_pack, "missing from " + primary_.location()).pack = pack.name;
        unusable_.insert(pack.name);
      } else if (*size != pack.size) {
        add(VerifyProblemKind::wrong_size, std::to_string(*size) + " bytes instead of " + std::to_string(pack.size) +
                                               " (truncated or overwritten)")
            .pack = pack.name;
        unusable_.insert(pack.name);
      }
      progress("sizes", i + 1, packs_.size());
    }
    std::unordered_set<std::string> referenced;
    for (const ManifestPack& pack : packs_) {
      referenced.insert(pack.name);
    }
    for (const Repository::StoredPack& stored_pack : stored) {
      if (referenced.count(stored_pack.name) == 0) {
        add(VerifyProblemKind::unreferenced_pack,
            "referenced by nothing (left by an interrupted run; `mybackup clean` removes it)")
            .pack = stored_pack.name;
      }
    }
  }

  /// The manifests on the destination are those of the runs the catalog recorded, numbered
  /// without a gap, and at least as many as this home has seen there.
  void check_manifest_sets() {
    destination_manifests_ = primary_.manifest_keys();
    const ManifestCheck sequence = check_manifest_sequence(catalog_, primary_.location(), destination_manifests_);
    for (const SequenceGap& gap : sequence.missing) {
      VerifyProblem& problem = add(VerifyProblemKind::manifest_gap,
          (gap.first == gap.last ? "manifest number " + std::to_string(gap.first)
                                 : "manifest numbers " + std::to_string(gap.first) + " to " + std::to_string(gap.last)) +
              " missing from " + primary_.location() +
              " (manifests are never deleted: a catalog rebuilt from there would lack the versions they recorded)");
      problem.first_seq = gap.first;
      problem.last_seq = gap.last;
    }
    if (sequence.rolled_back()) {
      add(VerifyProblemKind::rolled_back, "the newest manifest on " + primary_.location() + " is number " +
                                              std::to_string(sequence.highest) + ", but this computer has seen number " +
                                              std::to_string(sequence.remembered) + " there (rolled back?)")
          .last_seq = sequence.remembered;
    }
    std::vector<std::string> recorded;
    for (const RecordedManifest& manifest : catalog_.recorded_manifests()) {
      recorded.push_back(manifest.key);
    }
    std::sort(recorded.begin(), recorded.end());
    std::set_difference(recorded.begin(), recorded.end(), destination_manifests_.begin(), destination_manifests_.end(),
                        std::back_inserter(gone_));
    for (const std::string& key : gone_) {
      add(VerifyProblemKind::missing_manifest, "recorded by the catalog, missing from " + primary_.location() +
                                                   " (a catalog rebuilt from the destination would lack its versions)")
          .manifest = key;
    }
    const std::uint64_t last = catalog_.last_seq();
    std::vector<std::string> unrecorded;
    std::set_difference(destination_manifests_.begin(), destination_manifests_.end(), recorded.begin(), recorded.end(),
                        std::back_inserter(unrecorded));
    for (const std::string& key : unrecorded) {
      // Below the catalog's last run, an unrecorded manifest is one a replay refused (reported as
      // damaged by compare_with_manifests); above it, the next run records it.
      if (object_names::parse_manifest(key).value_or(0) > last) {
        add(VerifyProblemKind::unrecorded_manifest,
            "on the destination but not in the catalog (the next `mybackup backup` or `mybackup clean` records it)")
            .manifest = key;
      }
    }
  }

  /// Replays the manifests the catalog should know into a temporary catalog and compares the two
  /// as sorted streams. Manifests above the catalog's last one are only read (they are reported
  /// as unrecorded, not as disagreements). A manifest that cannot be read, authenticated or
  /// replayed is reported and the others still are; the catalogs are then not compared (they
  /// would differ by what that manifest holds).
  void compare_with_manifests() {
    const ScratchDirectory scratch(options_.scratch_directory);
    Catalog rebuilt(scratch.path() + "/backups.db");
    const std::uint64_t last = catalog_.last_seq();
    progress("manifests", 0, destination_manifests_.size());
    const ReplayReport replay = replay_new_manifests(rebuilt, primary_, last, RememberSequence::no);
    report_.manifests_checked += replay.replayed;
    for (const UnreadableManifest& manifest : replay.check.unreadable) {
      add(VerifyProblemKind::damaged_manifest, manifest.reason + ": the catalog was not compared with the manifests")
          .manifest = manifest.key;
    }
    const bool replayed_all = replay.check.unreadable.empty();
    for (const std::string& key : destination_manifests_) {
      if (object_names::parse_manifest(key).value_or(0) <= last) {
        continue;
      }
      check_cancel();
      try {
        primary_.read_manifest(key, scratch.path());
        ++report_.manifests_checked;
      } catch (const Error& error) {
        if (error.kind() != ErrorKind::corrupt) {
          throw;
        }
        add(VerifyProblemKind::damaged_manifest, std::string("cannot be read: ") + error.what()).manifest = key;
      }
    }
    progress("manifests", destination_manifests_.size(), destination_manifests_.size());
    if (!replayed_all) {
      return;
    }
    report_.catalog_compared = true;
    // Both are only read in order from here: two full page caches would double the memory.
    constexpr std::size_t kStreamingCache = 8 << 20;
    catalog_.limit_cache(kStreamingCache);
    rebuilt.limit_cache(kStreamingCache);
    compare_versions(rebuilt);
    compare_packs(rebuilt);
    compare_totals(rebuilt);
    catalog_.limit_cache(Catalog::kDefaultCacheBytes);
  }

  void compare_versions(const Catalog& rebuilt) {
    const std::unique_ptr<Catalog::VersionCursor> live = catalog_.version_cursor();
    const std::unique_ptr<Catalog::VersionCursor> replayed = rebuilt.version_cursor();
    std::vector<AffectedVersion> only_live;
    std::vector<AffectedVersion> only_replayed;
    std::vector<AffectedVersion> different;
    ManifestVersion a;
    ManifestVersion b;
    bool has_a = live->next(a);
    bool has_b = replayed->next(b);
    const auto key = [](const ManifestVersion& version) { return AffectedVersion{version.path, version.number}; };
    while (has_a || has_b) {
      if (has_a && (!has_b || key(a) < key(b))) {
        only_live.push_back(key(a));
        ++report_.versions_compared;
        has_a = live->next(a);
      } else if (has_b && (!has_a || key(b) < key(a))) {
        only_replayed.push_back(key(b));
        has_b = replayed->next(b);
      } else {
        if (!(a == b)) {
          different.push_back(key(a));
        }
        ++report_.versions_compared;
        if (report_.versions_compared % 4096 == 0) {
          check_cancel();
          progress("catalog", report_.versions_compared, 0);
        }
        has_a = live->next(a);
        has_b = replayed->next(b);
      }
    }
    const auto report = [this](std::vector<AffectedVersion>& versions, const std::string& what) {
      if (!versions.empty()) {
        VerifyProblem& problem = add(VerifyProblemKind::catalog_mismatch, what);
        problem.affected = std::move(versions);
      }
    };
    report(only_live, "versions in the catalog that no manifest on the destination records");
    report(only_replayed, "versions the manifests record that the catalog lacks");
    report(different, "versions recorded differently by the catalog and the manifests");
  }

  /// The totals `status` shows, kept as each run was recorded, against the replay's. Reported
  /// only when the rows agree: otherwise the totals differ for the reason already reported.
  void compare_totals(const Catalog& rebuilt) {
    for (const VerifyProblem& problem : report_.problems) {
      if (problem.kind == VerifyProblemKind::catalog_mismatch) {
        return;
      }
    }
    const CatalogSummary live = catalog_.summary();
    const CatalogSummary replayed = rebuilt.summary();
    const auto figures = [](const CatalogSummary& summary) {
      return std::to_string(summary.files) + " files of " + std::to_string(summary.current_bytes) + " bytes, " +
             std::to_string(summary.versions) + " versions of " + std::to_string(summary.original_bytes) + " bytes, " +
             std::to_string(summary.chunks) + " chunks of " + std::to_string(summary.unique_bytes) + " bytes (" +
             std::to_string(summary.compressed_bytes) + " stored)";
    };
    if (figures(live) != figures(replayed)) {
      add(VerifyProblemKind::catalog_mismatch,
          "the totals status shows (" + figures(live) + ") differ from the manifests' (" + figures(replayed) + ")");
    }
  }

  void compare_packs(const Catalog& rebuilt) {
    // Two cursors side by side: one pack and its chunks from each at a time.
    const std::unique_ptr<Catalog::PackCursor> live = catalog_.pack_cursor();
    const std::unique_ptr<Catalog::PackCursor> replayed = rebuilt.pack_cursor();
    ManifestPack a;
    ManifestPack b;
    bool has_a = live->next(a);
    bool has_b = replayed->next(b);
    while (has_a || has_b) {
      if (has_a && (!has_b || a.name < b.name)) {
        add(VerifyProblemKind::catalog_mismatch, "indexed by the catalog but by no manifest").pack = a.name;
        mismatched_packs_.push_back(a.name);
        has_a = live->next(a);
      } else if (has_b && (!has_a || b.name < a.name)) {
        add(VerifyProblemKind::catalog_mismatch, "listed by the manifests but unknown to the catalog").pack = b.name;
        has_b = replayed->next(b);
      } else {
        if (!(a == b)) {
          add(VerifyProblemKind::catalog_mismatch,
              "the catalog and the manifests disagree on its size or on where its chunks are")
              .pack = a.name;
          mismatched_packs_.push_back(a.name);
        }
        has_a = live->next(a);
        has_b = replayed->next(b);
      }
    }
  }

  /// The referenced packs to read: all, or a random share; never one already missing.
  std::vector<const ManifestPack*> packs_to_read() const {
    std::vector<const ManifestPack*> candidates;
    for (const ManifestPack& pack : packs_) {
      if (unusable_.count(pack.name) == 0) {
        candidates.push_back(&pack);
      }
    }
    if (options_.subset_percent >= 100 || candidates.empty()) {
      return candidates;
    }
    const auto wanted = static_cast<std::size_t>(
        std::ceil(static_cast<double>(packs_.size()) * options_.subset_percent / 100.0 - 1e-9));
    const std::size_t count = std::clamp<std::size_t>(wanted, 1, candidates.size());
    std::mt19937_64 random(options_.seed != 0 ? options_.seed : std::random_device{}());
    std::shuffle(candidates.begin(), candidates.end(), random);
    candidates.resize(count);
    std::sort(candidates.begin(), candidates.end(),
              [](const ManifestPack* x, const ManifestPack* y) { return x->name < y->name; });
    return candidates;
  }

  void read_packs() {
    const std::vector<const ManifestPack*> chosen = packs_to_read();
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      check_cancel();
      read_pack(*chosen[i]);
      progress("reading", i + 1, chosen.size());
    }
  }

  void read_pack(const ManifestPack& pack) {
    Bytes bytes;
    try {
      bytes = primary_.read_pack(pack.name, pack.size, Repository::CheckHash::no);
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::not_found) {
        add(VerifyProblemKind::missing_pack, "missing from " + primary_.location() + " (deleted while verifying?)").pack =
            pack.name;
      } else if (is_access_failure(error.kind()) || error.kind() == ErrorKind::corrupt) {
        add(VerifyProblemKind::damaged_pack, std::string("cannot be read: ") + error.what()).pack = pack.name;
      } else {
        throw;
      }
      unusable_.insert(pack.name);
      return;
    }
    ++report_.packs_read;
    report_.bytes_read += bytes.size();
    const std::vector<PackEntry> blobs = catalog_.pack_blobs(pack.name);  // one pack's at a time

    if (const std::string hash = to_hex(Sha256::hash(bytes)); hash != pack.name) {
      add(VerifyProblemKind::damaged_pack, "its SHA-256 is " + hash + ", not its name: its bytes changed").pack = pack.name;
    }

    try {
      const std::vector<PackEntry> header = read_pack_header(primary_.keys().enc_key, bytes);
      std::unordered_map<ChunkId, const PackEntry*, ChunkIdHash> by_id;
      for (const PackEntry& entry : header) {
        by_id.emplace(entry.id, &entry);
      }
      for (const PackEntry& entry : blobs) {
        const auto found = by_id.find(entry.id);
        if (found == by_id.end() || !(*found->second == entry)) {
          VerifyProblem& problem = add(VerifyProblemKind::header_mismatch,
                                       found == by_id.end() ? "the pack's header does not list this chunk"
                                                            : "the pack's header places this chunk elsewhere than the catalog");
          problem.pack = pack.name;
          problem.chunk = to_hex(entry.id);
        }
      }
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::corrupt) {
        throw;
      }
      add(VerifyProblemKind::damaged_header,
          std::string("its header: ") + error.what())
          .pack = pack.name;
    }

    for (const PackEntry& entry : blobs) {
      ++report_.chunks_checked;
      std::string failure;
      if (static_cast<std::uint64_t>(entry.offset) + entry.length > bytes.size()) {
        failure = "it lies beyond the end of the pack";
      } else {
        try {
          primary_.open_chunk(pack.name, entry, ByteView(bytes).subspan(entry.offset, entry.length));
        } catch (const Error& error) {
          if (error.kind() != ErrorKind::corrupt) {
            throw;
          }
          failure = error.what();
        }
      }
      if (!failure.empty()) {
        VerifyProblem& problem = add(VerifyProblemKind::damaged_chunk, failure);
        problem.pack = pack.name;
        problem.chunk = to_hex(entry.id);
        damaged_chunks_.push_back(entry.id);
      }
    }
  }

  /// One catalog query for every pack and chunk found wanting; each problem gets its versions.
  void name_affected_versions() {
    std::vector<std::string> packs(unusable_.begin(), unusable_.end());
    packs.insert(packs.end(), mismatched_packs_.begin(), mismatched_packs_.end());
    if (packs.empty() && damaged_chunks_.empty()) {
      return;
    }
    std::map<std::string, std::vector<AffectedVersion>> by_pack;
    std::map<std::string, std::vector<AffectedVersion>> by_chunk;
    const std::unordered_set<std::string> pack_set(packs.begin(), packs.end());
    const ChunkIdSet chunk_set(damaged_chunks_.begin(), damaged_chunks_.end());
    for (ChunkUse& use : catalog_.versions_using(packs, damaged_chunks_)) {
      if (chunk_set.count(use.chunk) != 0) {
        by_chunk[to_hex(use.chunk)].push_back({use.path, use.number});
      }
      if (pack_set.count(use.pack) != 0) {
        by_pack[use.pack].push_back({std::move(use.path), use.number});
      }
    }
    const auto distinct = [](std::vector<AffectedVersion> versions) {
      std::sort(versions.begin(), versions.end());
      versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
      return versions;
    };
    for (VerifyProblem& problem : report_.problems) {
      switch (problem.kind) {
        case VerifyProblemKind::missing_pack:
        case VerifyProblemKind::wrong_size:
        case VerifyProblemKind::catalog_mismatch:
          if (!problem.pack.empty() && by_pack.count(problem.pack) != 0) {
            problem.affected = distinct(by_pack[problem.pack]);
          }
          break;
        case VerifyProblemKind::damaged_pack:
          if (unusable_.count(problem.pack) != 0 && by_pack.count(problem.pack) != 0) {
            problem.affected = distinct(by_pack[problem.pack]);  // unreadable: all of it
          }
          break;
        case VerifyProblemKind::damaged_chunk:
          if (by_chunk.count(problem.chunk) != 0) {
            problem.affected = distinct(by_chunk[problem.chunk]);
          }
          break;
        default:
          break;
      }
    }
  }

  /// For every pack missing or damaged on the primary: is an intact copy on the secondary?
  void consult_secondary() {
    if (options_.secondary == nullptr) {
      return;
    }
    std::map<std::string, SecondaryCopy> checked;
    for (VerifyProblem& problem : report_.problems) {
      switch (problem.kind) {
        case VerifyProblemKind::missing_pack:
        case VerifyProblemKind::wrong_size:
        case VerifyProblemKind::damaged_pack:
        case VerifyProblemKind::damaged_header:
        case VerifyProblemKind::damaged_chunk:
          break;
        default:
          continue;
      }
      auto found = checked.find(problem.pack);
      if (found == checked.end()) {
        check_cancel();
        found = checked.emplace(problem.pack, copy_on_secondary(problem.pack)).first;
      }
      problem.secondary = found->second;
    }
  }

  /// The size the catalog records for a pack (packs_ is sorted by name); 0 if it has none.
  std::uint64_t pack_size_of(const std::string& name) const {
    const auto found = std::lower_bound(packs_.begin(), packs_.end(), name,
                                        [](const ManifestPack& pack, const std::string& wanted) { return pack.name < wanted; });
    return found != packs_.end() && found->name == name ? found->size : 0;
  }

  /// A pack is intact on the secondary when its bytes there hash to its name.
  SecondaryCopy copy_on_secondary(const std::string& name) const {
    try {
      options_.secondary->read_pack(name, pack_size_of(name));
      return SecondaryCopy::intact;
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::not_found) {
        return SecondaryCopy::missing;
      }
      if (is_access_failure(error.kind()) || error.kind() == ErrorKind::corrupt) {
        return SecondaryCopy::damaged;
      }
      throw;
    }
  }

  const Catalog& catalog_;
  const Repository& primary_;
  const VerifyOptions& options_;
  VerifyReport report_;
  std::vector<ManifestPack> packs_;  // the catalog's, by name, without their chunks (Catalog::pack_blobs)
  std::vector<std::string> destination_manifests_;  // sorted (by sequence number)
  std::vector<std::string> gone_;                   // recorded by the catalog, missing from the destination
  std::unordered_set<std::string> unusable_;       // missing, wrong size or unreadable: no chunk can be read
  std::vector<std::string> mismatched_packs_;      // the catalog and the manifests disagree on them
  std::vector<ChunkId> damaged_chunks_;
};

}  // namespace

VerifyReport verify_repository(const Catalog& catalog, const Repository& primary, const VerifyOptions& options) {
  if (!(options.subset_percent > 0 && options.subset_percent <= 100)) {
    throw Error(ErrorKind::usage, "the subset must be above 0% and at most 100%");
  }
  return Verifier(catalog, primary, options).run();
}


void to_json(nlohmann::ordered_json& json, const VerifyProblem& problem) {
  nlohmann::ordered_json affected = nlohmann::ordered_json::array();
  for (const AffectedVersion& version : problem.affected) {
    affected.push_back({{"path", version.path}, {"version", version.number}});
  }
  json = {
      {"kind", to_string(problem.kind)},
      {"severity", severity(problem.kind) == Severity::error ? "error" : "warning"},
      {"pack", problem.pack},
      {"chunk", problem.chunk},
      {"manifest", problem.manifest},
      {"detail", problem.detail},
      {"secondary", to_string(problem.secondary)},
      {"affected", std::move(affected)},
  };
}

void to_json(nlohmann::ordered_json& json, const VerifyReport& report) {
  std::map<std::string_view, std::uint64_t> by_kind;  // sorted, so the output is stable
  for (const VerifyProblem& problem : report.problems) {
    ++by_kind[to_string(problem.kind)];
  }
  nlohmann::ordered_json problems_by_kind = nlohmann::ordered_json::object();
  for (const auto& [kind, count] : by_kind) {
    problems_by_kind[std::string(kind)] = count;
  }
  json = {
      {"read_data", report.read_data},
      {"subset_percent", report.subset_percent},
      {"ok", report.ok()},
      {"seconds", seconds_between(report.started_ns, report.finished_ns)},
      {"packs_referenced", report.packs_referenced},
      {"packs_on_destination", report.packs_on_destination},
      {"packs_read", report.packs_read},
      {"bytes_read", report.bytes_read},
      {"chunks_checked", report.chunks_checked},
      {"manifests_checked", report.manifests_checked},
      {"versions_compared", report.versions_compared},
      {"catalog_compared", report.catalog_compared},
      {"errors", report.errors()},
      {"warnings", report.warnings()},
      {"problems_by_kind", std::move(problems_by_kind)},
      {"problems", report.problems},
  };
}

VerifyRepair plan_repair(const VerifyReport& report) {
  std::set<std::string> packs;
  std::set<std::string> losses;
  std::set<AffectedVersion> lost;
  for (const VerifyProblem& problem : report.problems) {
    switch (problem.kind) {
      case VerifyProblemKind::missing_pack:
      case VerifyProblemKind::wrong_size:
      case VerifyProblemKind::damaged_pack:
      case VerifyProblemKind::damaged_header:
      case VerifyProblemKind::header_mismatch:
      case VerifyProblemKind::damaged_chunk:
        packs.insert(problem.pack);
        lost.insert(problem.affected.begin(), problem.affected.end());
        break;
      case VerifyProblemKind::manifest_gap:
        losses.insert(accepted_gap({problem.first_seq, problem.last_seq}));
        break;
      case VerifyProblemKind::rolled_back:
        losses.insert(accepted_rollback(problem.last_seq));
        break;
      case VerifyProblemKind::damaged_manifest:
        losses.insert(problem.manifest);
        break;
      case VerifyProblemKind::missing_manifest:
      case VerifyProblemKind::unrecorded_manifest:
      case VerifyProblemKind::catalog_mismatch:
      case VerifyProblemKind::unreferenced_pack:
        break;  // nothing a repair records: the next run records the manifest, clean handles the pack
    }
  }
  packs.erase("");
  return {std::vector<std::string>(packs.begin(), packs.end()), std::vector<std::string>(losses.begin(), losses.end()),
          std::vector<AffectedVersion>(lost.begin(), lost.end())};
}

void apply_repair(Catalog& catalog, const VerifyRepair& repair) {
  catalog.mark_damaged_packs(repair.damaged_packs);
  catalog.accept_manifest_losses(repair.accepted_losses);
}

}  // namespace mybackup
