#include "mybackup/catalog/replay.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

#include "mybackup/repository/object_names.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

std::string range_text(const SequenceGap& gap) {
  return gap.first == gap.last ? std::to_string(gap.first) : fmt::format("{}-{}", gap.first, gap.last);
}

/// A manifest's contribution to the run counters (a manifest does not say new from changed).
RunStats replayed_stats(const Manifest& manifest) {
  RunStats stats;
  if (manifest.kind == RunKind::clean) {
    stats.files_deleted = manifest.removed.size();  // a clean run's count of removed versions
  }
  for (const ManifestVersion& version : manifest.versions) {
    if (version.type == EntryType::deleted) {
      ++stats.files_deleted;
    } else if (version.type != EntryType::directory) {
      ++stats.files_changed;
    }
  }
  for (const ManifestPack& pack : manifest.packs) {
    stats.bytes_stored += pack.size;
  }
  return stats;
}

}  // namespace

std::string ManifestCheck::missing_text() const {
  std::string text;
  for (const SequenceGap& gap : missing) {
    text += (text.empty() ? "" : ", ") + range_text(gap);
  }
  return text;
}

std::vector<std::string> ManifestCheck::problems() const {
  std::vector<std::string> lines;
  if (!missing.empty()) {
    lines.push_back(fmt::format("{}: manifest number(s) {} missing (deleted, or lost with the disk): the versions they "
                                "recorded are unknown to a catalog rebuilt from there; run `mybackup verify`",
                                location, missing_text()));
  }
  if (rolled_back()) {
    lines.push_back(fmt::format("{}: the newest manifest there is number {}, but this computer has seen number {}: the "
                                "destination was rolled back or lost its newest manifests; run `mybackup verify`",
                                location, highest, remembered));
  }
  for (const UnreadableManifest& manifest : unreadable) {
    lines.push_back(manifest.reason + ": not applied (run `mybackup verify`)");
  }
  return lines;
}

std::uint64_t highest_seq(const std::vector<std::string>& manifest_keys) {
  std::uint64_t highest = 0;
  for (const std::string& key : manifest_keys) {
    highest = std::max(highest, object_names::parse_manifest(key).value_or(0));
  }
  return highest;
}

std::vector<SequenceGap> sequence_gaps(const std::vector<std::string>& manifest_keys) {
  std::vector<std::uint64_t> numbers;
  for (const std::string& key : manifest_keys) {
    if (const std::optional<std::uint64_t> seq = object_names::parse_manifest(key)) {
      numbers.push_back(*seq);
    }
  }
  std::sort(numbers.begin(), numbers.end());
  std::vector<SequenceGap> gaps;
  std::uint64_t expected = 1;
  for (const std::uint64_t seq : numbers) {
    if (seq > expected) {
      gaps.push_back({expected, seq - 1});
    }
    expected = std::max(expected, seq + 1);
  }
  return gaps;
}

namespace {
constexpr const char* kGapToken = "missing ";
constexpr const char* kRollbackToken = "below ";

/// The sequence ranges the user accepted as lost (sorted by first).
std::vector<SequenceGap> accepted_ranges(const std::unordered_set<std::string>& accepted) {
  std::vector<SequenceGap> ranges;
  for (const std::string& token : accepted) {
    unsigned long long first = 0;
    unsigned long long last = 0;
    if (token.rfind(kGapToken, 0) == 0 && std::sscanf(token.c_str() + std::strlen(kGapToken), "%llu-%llu", &first, &last) == 2) {
      ranges.push_back({first, last});
    }
  }
  std::sort(ranges.begin(), ranges.end(), [](const SequenceGap& a, const SequenceGap& b) { return a.first < b.first; });
  return ranges;
}
}  // namespace

std::string accepted_gap(const SequenceGap& gap) {
  return kGapToken + std::to_string(gap.first) + "-" + std::to_string(gap.last);
}

std::string accepted_rollback(std::uint64_t remembered) { return kRollbackToken + std::to_string(remembered); }

ManifestCheck check_manifest_sequence(const Catalog& catalog, const std::string& location,
                                      const std::vector<std::string>& keys) {
  ManifestCheck check;
  check.location = location;
  check.highest = highest_seq(keys);
  check.remembered = catalog.highest_seq_seen(location);
  const std::unordered_set<std::string> accepted = catalog.accepted_manifest_losses();
  // What is left of each gap once the accepted ranges are taken out: one pass over the ranges
  // per gap, never one step per number (a planted manifest numbered 9999999999 makes a gap of
  // ten billion numbers).
  const std::vector<SequenceGap> ranges = accepted_ranges(accepted);
  for (const SequenceGap& gap : sequence_gaps(keys)) {
    std::uint64_t from = gap.first;
    for (const SequenceGap& range : ranges) {
      if (range.last < from || range.first > gap.last) {
        continue;
      }
      if (range.first > from) {
        check.missing.push_back({from, range.first - 1});
      }
      from = std::max(from, range.last + 1);
      if (from > gap.last) {
        break;
      }
    }
    if (from <= gap.last) {
      check.missing.push_back({from, gap.last});
    }
  }
  if (check.rolled_back() && accepted.count(accepted_rollback(check.remembered)) != 0) {
    check.remembered = check.highest;
  }
  // Manifests an earlier replay passed over because they could not be read: the catalog lacks
  // what they recorded, so their packs look unreferenced.
  const std::uint64_t known = catalog.last_seq();
  std::unordered_set<std::string> recorded;
  for (const RecordedManifest& manifest : catalog.recorded_manifests()) {
    recorded.insert(manifest.key);
  }
  for (const std::string& key : keys) {
    if (object_names::parse_manifest(key).value_or(0) <= known && recorded.count(key) == 0 && accepted.count(key) == 0) {
      check.unreadable.push_back(
          {key, "manifest " + location + "/" + key + " is not in the catalog (it could not be read when it was found)"});
    }
  }
  return check;
}

ReplayReport replay_new_manifests(Catalog& catalog, const Repository& repository, std::uint64_t up_to_seq,
                                  RememberSequence remember) {
  const std::vector<std::string> keys = repository.manifest_keys();
  ReplayReport report;
  report.check = check_manifest_sequence(catalog, repository.location(), keys);
  const std::uint64_t known = catalog.last_seq();
  const std::unordered_set<std::string> accepted = catalog.accepted_manifest_losses();
  for (const std::string& key : keys) {
    const std::uint64_t seq = object_names::parse_manifest(key).value_or(0);
    if (seq <= known) {
      continue;
    }
    if (seq > up_to_seq) {
      break;  // keys come in sequence order
    }
    Manifest manifest;
    try {
      manifest = repository.read_manifest(key, catalog.directory());
    } catch (const Error& error) {
      // The manifest's own fault: passed over. Anything else (unreachable, denied) is the run's.
      if (!is_damage(error.kind())) {
        throw;
      }
      if (accepted.count(key) == 0) {
        report.check.unreadable.push_back({key, error.what()});
      }
      continue;
    }
    try {
      catalog.record_run(manifest, key, replayed_stats(manifest));
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::corrupt) {
        throw;
      }
      if (accepted.count(key) == 0) {
        report.check.unreadable.push_back({key, "manifest " + repository.location() + "/" + key +
                                                    " contradicts what the catalog already records (two writers at "
                                                    "once?): " + error.what()});
      }
      continue;
    }
    ++report.replayed;
  }
  if (remember == RememberSequence::yes) {
    // The highest manifest applied, not the highest name: a planted name must not become the
    // number this home expects from now on.
    catalog.remember_highest_seq(repository.location(), catalog.last_seq());
  }
  return report;
}

std::string newest_recorded_config(const Repository& repository, const std::string& spool_directory) {
  const std::vector<std::string> keys = repository.manifest_keys();
  for (auto key = keys.rbegin(); key != keys.rend(); ++key) {
    try {
      Manifest manifest = repository.read_manifest(*key, spool_directory);
      if (!manifest.config.empty()) {
        return std::move(manifest.config);
      }
    } catch (const Error& error) {
      if (!is_damage(error.kind())) {
        throw;
      }
    }
  }
  return "";
}

}  // namespace mybackup
