#include "mybackup/repository/lock.hpp"

#include <nlohmann/json.hpp>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {
struct Holder {
  std::string host;
  long pid = 0;
  std::string boot_id;       // "" when the lock does not say (an older version wrote it)
  std::uint64_t pid_ns = 0;  // 0 when the lock does not say
  std::string purpose;
  std::int64_t time_ns = 0;
};

bool parse_holder(const Bytes& raw, Holder& holder) {
  try {
    const nlohmann::json root = nlohmann::json::parse(as_text(raw));
    holder.host = root.at("host").get<std::string>();
    const nlohmann::json& pid = root.at("pid");
    const nlohmann::json& time_ns = root.at("time_ns");
    // get<>() of a number with a fraction or an exponent (1e300) is undefined behaviour.
    if (!pid.is_number_integer() || !time_ns.is_number_integer()) {
      return false;
    }
    holder.pid = pid.get<long>();
    holder.purpose = root.value("purpose", "");
    holder.time_ns = time_ns.get<std::int64_t>();
    // The identity fields are optional: of another type they count as unknown (judged by age).
    const auto boot_id = root.find("boot_id");
    if (boot_id != root.end() && boot_id->is_string()) {
      holder.boot_id = boot_id->get<std::string>();
    }
    const auto pid_ns = root.find("pid_ns");
    if (pid_ns != root.end() && pid_ns->is_number_unsigned()) {
      holder.pid_ns = pid_ns->get<std::uint64_t>();
    }
    return !holder.host.empty();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

enum class Verdict { live, stale, dated_in_the_future };

/// `time_ns` is before `limit_ns` less `span` (computed without overflow at the ends of time).
bool before(std::int64_t time_ns, std::int64_t limit_ns, std::chrono::nanoseconds span) {
  std::int64_t bound = 0;
  if (__builtin_sub_overflow(limit_ns, static_cast<std::int64_t>(span.count()), &bound)) {
    return false;  // the bound is below the start of 64-bit time (span >= 0): nothing is before it
  }
  return time_ns < bound;
}

/// The rules of lock.hpp, in its order.
Verdict judge(const Holder& holder, const ProcessIdentity& self, Env& env, const LockOptions& options) {
  const std::int64_t now = env.now_ns();
  if (before(now, holder.time_ns, options.stale_after)) {
    return Verdict::dated_in_the_future;
  }
  const bool same_host = holder.host == self.host;
  const bool boot_known = !holder.boot_id.empty() && !self.boot_id.empty();
  const bool same_boot = same_host && boot_known && holder.boot_id == self.boot_id;
  if (same_boot && self.pid_ns != 0 && holder.pid_ns == self.pid_ns && !env.process_exists(holder.pid)) {
    return Verdict::stale;  // its pid is one of ours, and no such process is left
  }
  if (same_host && boot_known && !same_boot && self.boot_started_ns != 0 && holder.time_ns < self.boot_started_ns &&
      before(holder.time_ns, now, 2 * options.refresh_interval)) {
    return Verdict::stale;  // last refreshed during an earlier boot of this machine
  }
  return before(holder.time_ns, now, options.stale_after) ? Verdict::stale : Verdict::live;
}
}  // namespace

std::string RepositoryLock::describe_self() const {
  const std::int64_t now = env_.now_ns();
  nlohmann::ordered_json self = {{"host", self_.host}, {"pid", static_cast<std::int64_t>(self_.pid)}};
  if (!self_.boot_id.empty()) {
    self["boot_id"] = self_.boot_id;
  }
  if (self_.pid_ns != 0) {
    self["pid_ns"] = self_.pid_ns;
  }
  self["purpose"] = purpose_;
  self["time_ns"] = now;
  self["time"] = format_utc(now);
  // A host name that is not UTF-8 is written with U+FFFD: JSON text must be UTF-8.
  return self.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string RepositoryLock::new_key() {
  std::array<std::uint8_t, 8> random{};
  random_bytes(random);
  return object_names::lock(to_hex(random));
}

RepositoryLock::RepositoryLock(Backend& backend, const std::string& purpose, const LockOptions& options)
    : backend_(backend), purpose_(purpose), options_(options), env_(Env::or_default(options.env)),
      self_(env_.process_identity()) {
  key_ = new_key();
  backend_.put(key_, as_bytes(describe_self()), Overwrite::no);

  std::string conflict;
  try {
    // Until a listing removes no stale lock: a holder judged stale may have refreshed under a new
    // name after the listing that showed its old one.
    for (bool removed_stale = true; removed_stale && conflict.empty();) {
      removed_stale = false;
      for (const ObjectInfo& object : backend_.list(object_names::kLocks)) {
        const std::string& other = object.name;
        if (other == key_ || !object_names::is_lock(other)) {
          continue;  // ours, or not a lock's name (never read, never removed)
        }
        Bytes raw;
        try {
          raw = backend_.get(other, object_names::kMaxLockSize);
        } catch (const Error& error) {
          if (error.kind() == ErrorKind::not_found) {
            continue;  // released meanwhile
          }
          throw;
        }
        Holder holder;
        if (!parse_holder(raw, holder)) {
          conflict = "an unreadable lock file " + backend_.location() + "/" + other +
                     " is in the way (delete it if no mybackup is running there)";
          break;
        }
        const Verdict verdict = judge(holder, self_, env_, options_);
        if (verdict == Verdict::stale) {
          backend_.remove(other);  // its holder is gone
          removed_stale = true;
          continue;
        }
        if (verdict == Verdict::dated_in_the_future) {
          conflict = "the lock file " + backend_.location() + "/" + other + " (pid " + std::to_string(holder.pid) +
                     " on " + holder.host + ") is dated in the future, " + format_local(holder.time_ns) +
                     ": check the clocks of the computers writing there, and delete that file if no other mybackup "
                     "is writing to this repository";
          break;
        }
        conflict = "the repository at " + backend_.location() + " is locked by " + holder.purpose + " (pid " +
                   std::to_string(holder.pid) + " on " + holder.host + " since " + format_local(holder.time_ns) +
                   "): wait for it to finish";
        break;
      }
    }
  } catch (...) {
    backend_.remove(key_);
    throw;
  }
  if (!conflict.empty()) {
    backend_.remove(key_);
    throw Error(ErrorKind::locked, conflict);
  }
  refresher_ = std::thread([this] { refresh_loop(); });
}

RepositoryLock::~RepositoryLock() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (refresher_.joinable()) {
    refresher_.join();
  }
  try {
    backend_.remove(key_);
  } catch (const Error&) {
    // A lock we cannot remove goes stale and is removed by the next writer on this host.
  }
}

std::string RepositoryLock::key() const {
  std::lock_guard lock(mutex_);
  return key_;
}

bool RepositoryLock::still_held() const {
  std::lock_guard lock(mutex_);
  if (!lost_ && !backend_.size(key_)) {
    lost_ = true;
  }
  return !lost_;
}

void RepositoryLock::refresh_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_ && !lost_) {
    if (env_.wait_for(wake_, lock, options_.refresh_interval) != std::cv_status::timeout) {
      continue;  // woken by the destructor (or spuriously: the wait starts again)
    }
    if (stopping_) {
      return;
    }
    try {
      refresh();
    } catch (const Error&) {
      // Best effort: a missed refresh only matters after stale_after.
    }
  }
}

void RepositoryLock::refresh() {
  const std::string next = new_key();
  backend_.put(next, as_bytes(describe_self()), Overwrite::no);
  if (!backend_.size(key_)) {
    lost_ = true;  // removed by another writer who judged it stale: never recreated
    backend_.remove(next);
    return;
  }
  const std::string previous = key_;
  key_ = next;
  backend_.remove(previous);
}

}  // namespace mybackup
