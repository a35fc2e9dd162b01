#include "mybackup/engine/retention.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

constexpr std::int64_t kNsPerDay = 86'400LL * 1'000'000'000LL;
constexpr std::int64_t kMinNs = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxNs = std::numeric_limits<std::int64_t>::max();

/// Whether a version whose (running maximum) finish time is `finished_ns` is young.
/// keep_days * kNsPerDay overflows int64 past ~106,751 days, so the window saturates, and so does
/// the cutoff now_ns - window: a window reaching past the earliest representable time makes
/// every version young.
class AgeRule {
 public:
  AgeRule(std::int64_t now_ns, int keep_days) {
    if (keep_days == 0) {
      return;  // no version is young
    }
    enabled_ = true;
    const std::int64_t window =
        keep_days > kMaxNs / kNsPerDay ? kMaxNs : static_cast<std::int64_t>(keep_days) * kNsPerDay;
    if (now_ns < kMinNs + window) {
      everything_young_ = true;
    } else {
      cutoff_ns_ = now_ns - window;
    }
  }

  // Strictly after the cutoff: a version exactly keep_days old is not young. A version from after
  // now_ns is past the cutoff too, which is the same as counting it as finishing now.
  bool young(std::int64_t finished_ns) const {
    return enabled_ && (everything_young_ || finished_ns > cutoff_ns_);
  }

 private:
  bool enabled_ = false;
  bool everything_young_ = false;
  std::int64_t cutoff_ns_ = 0;
};

}  // namespace

void RetentionPolicy::validate() const {
  if (keep_days < 0) {
    throw Error(ErrorKind::usage,
                "--keep-days must be a whole number of days, 0 or more, got " + std::to_string(keep_days));
  }
  if (keep_versions < 1) {
    throw Error(ErrorKind::usage,
                "--keep-versions must be a whole number, 1 or more, got " + std::to_string(keep_versions));
  }
}

std::vector<bool> versions_to_keep(const std::vector<VersionRecord>& versions, std::int64_t now_ns,
                                   const RetentionPolicy& policy) {
  policy.validate();
  const std::size_t count = versions.size();
  std::vector<bool> keep(count, false);
  if (count == 0) {
    return keep;
  }
  const AgeRule age_rule(now_ns, policy.keep_days);
  // The running maximum makes "young" monotone along the list even if the clock stepped back, so
  // the kept set stays a suffix and a kept version never outlives a newer deletion marker.
  std::vector<std::int64_t> finished_ns(count);
  std::int64_t latest_ns = kMinNs;
  for (std::size_t i = 0; i < count; ++i) {
    latest_ns = std::max(latest_ns, versions[i].run_finished_ns);
    finished_ns[i] = latest_ns;
  }
  // A deleted path whose deletion has expired leaves history entirely; without this the count
  // would keep its marker (always the newest version) forever.
  if (versions.back().type == EntryType::deleted && !age_rule.young(finished_ns.back())) {
    return keep;
  }
  const auto keep_versions = static_cast<std::size_t>(policy.keep_versions);
  for (std::size_t i = 0; i < count; ++i) {
    const bool among_newest = count - i <= keep_versions;
    const bool current_content = i + 1 == count && versions[i].type != EntryType::deleted;
    keep[i] = age_rule.young(finished_ns[i]) || among_newest || current_content;
  }
  return keep;
}

}  // namespace mybackup
