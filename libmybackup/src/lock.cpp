#include "mybackup/lock.hpp"

#include <signal.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>

#include "mybackup/clock.hpp"
#include "mybackup/error.hpp"
#include "mybackup/json.hpp"

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
    const YAML::Node root = YAML::Load(std::string(as_text(raw)));
    holder.host = root["host"].as<std::string>();
    holder.pid = root["pid"].as<long>();
    holder.purpose = root["purpose"].as<std::string>("");
    holder.time_ns = root["time_ns"].as<std::int64_t>();
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }
}  // namespace

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) {
    return "unknown";
  }
  return name;
}

std::string RepositoryLock::describe_self() const {
  const std::int64_t now = system_clock().now_ns();
  JsonWriter json;
  json.begin_object()
      .key("host").value(host_name())
      .key("pid").value(static_cast<std::int64_t>(::getpid()))
      .key("purpose").value(purpose_)
      .key("time_ns").value(now)
      .key("time").value(format_utc(now))
      .end_object();
  return json.str() + "\n";
}

RepositoryLock::RepositoryLock(Backend& backend, const std::string& purpose) : backend_(backend), purpose_(purpose) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      backend_.put(kKey, as_bytes(describe_self()), Overwrite::no);
      refresher_ = std::thread([this] { refresh_loop(); });
      return;
    } catch (const Error& error) {
      if (error.kind() != ErrorKind::exists) {
        throw;
      }
    }
    Bytes raw;
    try {
      raw = backend_.get(kKey);
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::not_found) {
        continue;  // released meanwhile
      }
      throw;
    }
    Holder holder;
    const std::int64_t age_ns = parse_holder(raw, holder) ? system_clock().now_ns() - holder.time_ns : 0;
    const bool unreadable = holder.host.empty();
    const bool dead_here = !unreadable && holder.host == host_name() && !process_alive(holder.pid);
    const bool abandoned = !unreadable && age_ns > std::chrono::nanoseconds(kStaleAfter).count();
    if (dead_here || abandoned || (unreadable && attempt > 0)) {
      backend_.remove(kKey);  // stale: its holder is gone
      continue;
    }
    if (unreadable) {
      continue;  // possibly being written right now; look again
    }
    throw Error(ErrorKind::locked, "the repository at " + backend_.location() + " is locked by " + holder.purpose +
                                       " (pid " + std::to_string(holder.pid) + " on " + holder.host + " since " +
                                       format_local(holder.time_ns) + "): wait for it to finish");
  }
  throw Error(ErrorKind::locked, "cannot take the lock of the repository at " + backend_.location() + ": try again");
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
    backend_.remove(kKey);
  } catch (const Error&) {
    // A lock we cannot remove goes stale and is broken by the next writer on this host.
  }
}

void RepositoryLock::refresh_loop() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, kRefreshInterval, [this] { return stopping_; })) {
    try {
      backend_.put(kKey, as_bytes(describe_self()), Overwrite::yes);
    } catch (const Error&) {
      // Best effort: a missed refresh only matters after kStaleAfter.
    }
  }
}

}  // namespace mybackup
