#include "mybackup/engine/restore_plan.hpp"

#include <sys/stat.h>

#include <limits>
#include <memory>

#include "mybackup/source/scanner.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"

namespace mybackup {

namespace {

std::string version_list(const std::vector<VersionRecord>& versions) {
  std::string text;
  for (const VersionRecord& version : versions) {
    text += (text.empty() ? "" : ", ") + std::to_string(version.number) + " (" + format_local(version.run_finished_ns) +
            (version.type == EntryType::deleted ? ", deleted" : "") + ")";
  }
  return text.empty() ? "none" : text;
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

VersionRecord choose_version(const Catalog& catalog, const std::vector<VersionRecord>& versions, const std::string& path,
                             const RestorePoint& point) {
  if (point.version != 0) {
    for (const VersionRecord& version : versions) {
      if (version.number == point.version && version.type != EntryType::deleted) {
        return version;
      }
    }
    throw Error(ErrorKind::not_found, "no version " + std::to_string(point.version) + " of " + path +
                                          " to restore; its versions are " + version_list(versions));
  }
  if (!point.at_ns) {
    // Now: the newest version that is not a deletion, so that a deleted file comes back.
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
      if (it->type != EntryType::deleted) {
        return *it;
      }
    }
    throw Error(ErrorKind::not_found, "no version of " + path + " to restore; its versions are " + version_list(versions));
  }
  for (const VersionRecord& version : catalog.state_at(path, *point.at_ns)) {
    if (version.path != path) {
      continue;
    }
    if (version.type == EntryType::deleted) {
      throw Error(ErrorKind::not_found, path + " did not exist on " + point.label + " (deleted in version " +
                                            std::to_string(version.number) + "); its versions are " + version_list(versions));
    }
    return version;
  }
  throw Error(ErrorKind::not_found, "no version of " + path + " as of " + point.label + "; its versions are " +
                                        version_list(versions));
}

RestorePlan plan_file_restore(const Catalog& catalog, const std::string& path, const std::string& destination,
                              const RestorePoint& point) {
  const std::vector<VersionRecord> versions = catalog.versions_of(path);
  if (versions.empty()) {
    throw Error(ErrorKind::not_found, "no backup of " + path + " (`mybackup restore --list` shows every backed-up path)");
  }
  const VersionRecord version = choose_version(catalog, versions, path, point);
  if (version.type == EntryType::directory) {
    throw Error(ErrorKind::usage, path + " is a directory: use `mybackup restore --directory " + path + "`");
  }
  RestorePlan plan;
  if (destination.empty()) {
    plan.root = parent_directory(path);
    plan.items.push_back({base_name(path), version});
    return plan;
  }
  struct stat info {};
  if (::stat(destination.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    plan.root = destination;  // into that directory, under the file's own name
    plan.items.push_back({base_name(path), version});
  } else {
    plan.root = parent_directory(destination);
    plan.items.push_back({base_name(destination), version});
  }
  return plan;
}

RestorePlan plan_directory_restore(const Catalog& catalog, const std::string& directory, const std::string& destination,
                                   const RestorePoint& point) {
  if (point.version != 0) {
    throw Error(ErrorKind::usage, "--version applies to one file: for a directory use --date");
  }
  RestorePlan plan;
  plan.root = destination.empty() ? directory : destination;
  // The tree is read from the catalog as the restore goes (a cursor in path order), never held.
  const std::int64_t at_ns = point.at_ns.value_or(std::numeric_limits<std::int64_t>::max());
  const auto open = [&catalog, directory, at_ns]() -> RestoreItemSource {
    const std::string prefix = directory == "/" ? "/" : directory + "/";
    std::shared_ptr<Catalog::StateCursor> cursor = catalog.state_cursor(directory, at_ns);
    return [cursor, directory, prefix](RestoreItem& item) {
      VersionRecord version;
      while (cursor->next(version)) {
        if (version.type == EntryType::deleted) {
          continue;  // did not exist at that moment
        }
        item.relative = version.path == directory ? "" : version.path.substr(prefix.size());
        item.version = std::move(version);
        return true;
      }
      return false;
    };
  };
  // The first item says whether there is anything, and whether the root is a directory.
  RestoreItem first;
  if (!open()(first)) {
    throw Error(ErrorKind::not_found, "nothing backed up under " + directory + (point.at_ns ? " as of " + point.label : "") +
                                          " (`mybackup restore --list` shows every backed-up path)");
  }
  if (first.relative.empty() && first.version.type != EntryType::directory) {
    throw Error(ErrorKind::usage, directory + " is not a directory: use `mybackup restore --file " + directory + "`");
  }
  plan.open_items = open;
  return plan;
}

}  // namespace mybackup
