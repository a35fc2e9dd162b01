#include "mybackup/repository/lock.hpp"

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>

#include "mybackup/crypto/crypto.hpp"
#include "mybackup/repository/object_names.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {
struct Holder {
  std::string host;
  long pid = 0;
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
    return !holder.host.empty();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

bool is_stale(const Holder& holder, std::int64_t now_ns, std::chrono::nanoseconds stale_after) {
  if (holder.host == host_name() && !process_alive(holder.pid)) {
    return true;
  }
  // Not now_ns - time_ns, which overflows for a time far in the past.
  return holder.time_ns < now_ns - stale_after.count();
}
}  // namespace

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) {
    return "unknown";
  }
  return name;
}

std::string RepositoryLock::describe_self() const {
  const std::int64_t now = env_.now_ns();
  const nlohmann::ordered_json self = {
      {"host", host_name()},
      {"pid", static_cast<std::int64_t>(::getpid())},
      {"purpose", purpose_},
      {"time_ns", now},
      {"time", format_utc(now)},
  };
  // A host name that is not UTF-8 is written with U+FFFD: JSON text must be UTF-8.
  return self.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string RepositoryLock::new_key() {
  std::array<std::uint8_t, 8> random{};
  random_bytes(random);
  return object_names::lock(to_hex(random));
}

RepositoryLock::RepositoryLock(Backend& backend, const std::string& purpose, const LockOptions& options)
    : backend_(backend), purpose_(purpose), options_(options), env_(Env::or_default(options.env)) {
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
        if (is_stale(holder, env_.now_ns(), options_.stale_after)) {
          backend_.remove(other);  // its holder is gone
          removed_stale = true;
          continue;
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
