#pragma once
// Bringing the catalog up to date from the destination. The destination is the truth: when it
// holds manifests the catalog has not recorded (a run that crashed after writing its manifest,
// or another machine writing to the same repository), they are replayed into the catalog, in
// sequence order, before anything new is planned. Otherwise a new run would plan against an old
// state and reuse version numbers.

#include <cstddef>
#include <string>
#include <cstdint>
#include <limits>

#include "mybackup/catalog/catalog.hpp"
#include "mybackup/repository/repository.hpp"

namespace mybackup {

/// Records every manifest whose sequence number is above catalog.last_seq() (and at most
/// `up_to_seq`), oldest first, each in its own transaction. Returns how many were replayed.
/// Errors from reading a manifest (corrupt, crypto) propagate; what was replayed before stays
/// recorded (and is correct).
std::size_t replay_new_manifests(Catalog& catalog, const Repository& repository,
                                 std::uint64_t up_to_seq = std::numeric_limits<std::uint64_t>::max());

/// The config.yaml text recorded by the newest manifest that has one ("" if none does), for
/// `init --from`. Reads manifests newest first and stops at the first with a config.
std::string newest_recorded_config(const Repository& repository);

}  // namespace mybackup
