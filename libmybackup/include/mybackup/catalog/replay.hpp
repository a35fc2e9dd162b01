#pragma once
// Bringing the catalog up to date from the destination, and judging the destination's manifests.
//
// The destination is the truth: when it holds manifests the catalog has not recorded (a run that
// crashed after writing its manifest, or another machine writing to the same repository), they
// are replayed into the catalog, in sequence order, before anything new is planned. Otherwise a
// new run would plan against an old state and reuse version numbers.
//
// But the destination is also untrusted: anyone who can write to it can delete manifests (hiding
// newer versions of files, and making their packs look like orphans) or plant junk ones. So every
// listing is checked: manifest numbers run 1, 2, 3… with no gap (manifests are never deleted), the
// destination holds at least the highest number this home has seen there, and a manifest that
// fails authentication is never applied and never blocks the others.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/repository/repository.hpp"

namespace mybackup {

/// A manifest that was not applied, and why (it failed authentication or decoding).
struct UnreadableManifest {
  std::string key;     // "snapshots/0000000005-….enc"
  std::string reason;  // the error, one line
};

/// Sequence numbers first..last (inclusive) that no manifest on the destination holds.
struct SequenceGap {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const SequenceGap&) const = default;
};

/// What a look at a destination's manifests found. Losses the user accepted with
/// `verify --repair` (Catalog::accepted_manifest_losses) are left out.
struct ManifestCheck {
  std::string location;                       // the destination
  std::uint64_t highest = 0;                  // highest sequence number there
  std::uint64_t remembered = 0;               // highest this home had seen there before
  std::vector<SequenceGap> missing;           // numbers below `highest` no manifest holds
  /// Manifests that failed authentication or decoding: read by this replay and refused, or passed
  /// over by an earlier one (on the destination, below the catalog's last, not recorded).
  std::vector<UnreadableManifest> unreadable;

  /// The destination holds fewer manifests than this home has seen there.
  bool rolled_back() const { return highest < remembered; }
  bool healthy() const { return missing.empty() && unreadable.empty() && !rolled_back(); }
  /// "3, 5-7": the missing numbers, for messages.
  std::string missing_text() const;
  /// One line per problem, naming the destination, the numbers or the file, and what to do.
  std::vector<std::string> problems() const;
};

/// The highest sequence number among `manifest_keys` (0 if none); other names are ignored.
std::uint64_t highest_seq(const std::vector<std::string>& manifest_keys);
/// Numbers in 1..highest that no key holds, as ranges; keys that are not manifest names are ignored.
std::vector<SequenceGap> sequence_gaps(const std::vector<std::string>& manifest_keys);

/// The tokens Catalog::accept_manifest_losses records for a gap and for a rollback below the
/// number this home remembers (an unreadable manifest is accepted by its key).
std::string accepted_gap(const SequenceGap& gap);
std::string accepted_rollback(std::uint64_t remembered);

/// Checks `keys` (the destination's manifest keys, as listed) against what `catalog` remembers
/// for the destination at `location`. Reads no manifest and changes nothing.
ManifestCheck check_manifest_sequence(const Catalog& catalog, const std::string& location,
                                      const std::vector<std::string>& keys);

struct ReplayReport {
  std::size_t replayed = 0;  // manifests recorded into the catalog
  ManifestCheck check;       // the destination's sequence, and the manifests refused
};

/// Records every manifest whose sequence number is above catalog.last_seq() (and at most
/// `up_to_seq`), oldest first, each in its own transaction, and each read in constant memory
/// through temporary files beside the catalog (Repository::read_manifest). A manifest that cannot be read or
/// authenticated (Error corrupt or crypto) is skipped and listed in check.unreadable; other errors
/// (the destination unreachable, the catalog failing) propagate, with what was replayed before
/// staying recorded (and correct). RememberSequence::yes then raises the number the catalog
/// remembers for this destination to the highest manifest it now holds (never to a name that did
/// not authenticate); ::no is for a scratch catalog (verify).
enum class RememberSequence { no, yes };
ReplayReport replay_new_manifests(Catalog& catalog, const Repository& repository,
                                  std::uint64_t up_to_seq = std::numeric_limits<std::uint64_t>::max(),
                                  RememberSequence remember = RememberSequence::yes);

/// The config.yaml text recorded by the newest readable manifest that has one ("" if none does),
/// for `init --from`. Reads manifests newest first and stops at the first with a config; an
/// unreadable one is passed over. Manifests are read through `spool_directory`
/// (Repository::read_manifest).
std::string newest_recorded_config(const Repository& repository, const std::string& spool_directory);

}  // namespace mybackup
