// `mybackup key export|add|list|remove|check`: the master key, and the passphrases that unlock a
// copy of it on the destination (library: key_wrap.hpp).

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli.hpp"
#include "mybackup/crypto/crypto.hpp"
#include "mybackup/util/error.hpp"
#include "mybackup/util/fs.hpp"
#include "mybackup/crypto/key_wrap.hpp"

namespace mybackup::cli {

namespace {

/// Where wrapped keys live for this home: the destination's repository (when one is configured
/// and exists there) and the home's pending store.
struct KeyStores {
  std::string destination;                 // "" when none is configured
  std::unique_ptr<Repository> repository;  // nullptr when no repository exists there yet
  std::unique_ptr<Backend> pending;

  std::vector<Backend*> stores() {
    std::vector<Backend*> all;
    if (repository) {
      all.push_back(&repository->key_store());
    }
    all.push_back(pending.get());
    return all;
  }
  std::string where(const Backend* store) const { return store == pending.get() ? "pending" : "destination"; }
};

/// "ID  CREATED  WHERE  HOST  LABEL" row of `key list`.
std::string key_row(const WrappedKeyInfo& info, const std::string& where) {
  const std::string id = info.id.empty() ? "(unreadable)" : info.id;
  const std::string created = info.damaged ? "(damaged)" : !info.problem.empty() ? "(not used)" : info.created;
  char line[128];
  std::snprintf(line, sizeof line, "%-16s  %-20s  %-11s  ", id.c_str(), created.c_str(), where.c_str());
  return line + (info.host.empty() ? std::string("-") : info.host) + "  " + info.label;
}

KeyStores open_stores(Session& session) {
  KeyStores stores;
  stores.destination = session.config().destination_primary;
  if (!stores.destination.empty()) {
    stores.repository = session.open_primary(DestinationUse::read);
  }
  stores.pending = session.home().pending_keys();
  return stores;
}

void register_export(CLI::App& parent, Context& context) {
  auto* command = parent.add_subcommand("export", "Print the key file (or write it to --output FILE, mode 0600)");
  auto output = std::make_shared<std::string>();
  command->add_option("-o,--output", *output, "Write the key to FILE (mode 0600; an existing FILE is never overwritten)");
  add_example(*command, "mybackup key export --output /media/usb/mybackup.key");
  command->callback([&context, output] {
    const Config config = context.load_config();
    const std::string path = context.home().key_path(config);
    { const MasterKey checked = load_key_file(path); }  // a damaged key file is not exported
    Bytes raw = read_file(path);
    const char* warning =
        "mybackup: warning: this is your backup key: whoever holds it can read every backup; keep it private and offline\n";
    if (output->empty()) {
      std::cout.write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
      std::cout.flush();
      secure_wipe(raw);
      std::cerr << warning;
      context.log().info("key export: printed the key file");
      return;
    }
    try {
      create_file_atomic(*output, raw, 0600);
    } catch (const Error& error) {
      secure_wipe(raw);
      if (error.kind() == ErrorKind::exists) {
        throw Error(ErrorKind::exists, *output + " already exists: choose another file name (an existing file is never overwritten)");
      }
      throw;
    }
    secure_wipe(raw);
    std::cerr << warning;
    context.log().info("key export: wrote the key to {}", *output);
    say(context, "Key written to " + *output + " (mode 0600)");
  });
}

void register_add(CLI::App& parent, Context& context) {
  auto* command = parent.add_subcommand("add", "Add a passphrase that unlocks the key (stored on the destination)");
  auto label = std::make_shared<std::string>();
  auto passphrase_file = std::make_shared<std::string>();
  command->add_option("--label", *label, "A note to tell this passphrase from the others (\"offsite\", \"partner\")");
  command->add_option("--passphrase-file", *passphrase_file,
                      "Read the new passphrase from the first line of FILE (else $MYBACKUP_PASSPHRASE, else asked twice)");
  add_example(*command, "mybackup key add --label offsite");
  command->callback([&context, label, passphrase_file] {
    const std::unique_ptr<Session> session = context.open_session();
    const MasterKey& key = session->key();
    KeyStores stores = open_stores(*session);
    const ScryptParams params = new_key_scrypt_params();
    const WrapDetails details = new_key_details(*label);
    Passphrase passphrase;
    read_passphrase(*passphrase_file, PassphraseUse::new_one, passphrase);
    const WrappedKey wrapped = wrap_master_key(key, passphrase.text(), params, details);
    if (stores.repository) {
      add_wrapped_key(stores.repository->key_store(), wrapped);
      context.log().info("key add: wrapped key {} stored on {}", wrapped.id, stores.destination);
      say(context, "Added key " + wrapped.id + " on the destination " + stores.destination);
    } else {
      add_wrapped_key(*stores.pending, wrapped);
      context.log().info("key add: wrapped key {} pending in the home", wrapped.id);
      say(context, "Added key " + wrapped.id + " (pending: it goes to the destination at the next backup)");
    }
  });
}

void register_list(CLI::App& parent, Context& context) {
  auto* command = parent.add_subcommand("list", "List the passphrase-wrapped keys (id, created, host, label, where)");
  auto json = std::make_shared<bool>(false);
  command->add_flag("--json", *json, "One JSON object: {\"keys\": [{\"id\", \"created\", \"host\", \"label\", \"damaged\", \"where\"}]}");
  add_example(*command, "mybackup key list");
  command->callback([&context, json] {
    const std::unique_ptr<Session> session = context.open_session();
    KeyStores stores = open_stores(*session);
    std::vector<std::pair<WrappedKeyInfo, std::string>> rows;
    for (Backend* store : stores.stores()) {
      for (WrappedKeyInfo& info : list_wrapped_keys(*store)) {
        rows.emplace_back(std::move(info), stores.where(store));
      }
    }
    std::vector<std::string> warnings;
    for (const auto& [info, where] : rows) {
      if (!info.problem.empty()) {
        warnings.push_back(info.problem);
      }
    }
    report_key_warnings(context, warnings);
    if (*json) {
      nlohmann::ordered_json keys = nlohmann::ordered_json::array();
      for (const auto& [info, where] : rows) {
        nlohmann::ordered_json row = info;
        row["where"] = where;
        keys.push_back(std::move(row));
      }
      print_json({{"keys", std::move(keys)}});
      return;
    }
    if (rows.empty()) {
      say(context, "No passphrase-wrapped keys: add one with `mybackup key add` (only the key file opens the backups)");
      return;
    }
    say(context, "ID                CREATED               WHERE        HOST  LABEL");
    for (const auto& [info, where] : rows) {
      say(context, key_row(info, where));
    }
  });
}

void register_remove(CLI::App& parent, Context& context) {
  auto* command = parent.add_subcommand("remove", "Remove a passphrase-wrapped key (its passphrase no longer unlocks anything)");
  auto id = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  command->add_option("ID", *id, "The key's id (see mybackup key list)")->required();
  command->add_flag("--force", *force, "Remove it even if it is the last one (then only the key file opens the backups)");
  add_example(*command, "mybackup key remove 0123456789abcdef");
  command->callback([&context, id, force] {
    const std::unique_ptr<Session> session = context.open_session();
    KeyStores stores = open_stores(*session);
    // By the id computed from each file's content: every file of that key goes (a renamed copy
    // too, in either store), and a file merely named after it is not it.
    std::vector<Backend*> holding;
    bool usable = false;
    bool others_usable = false;
    for (Backend* store : stores.stores()) {
      bool holds = false;
      for (const WrappedKeyInfo& info : list_wrapped_keys(*store)) {
        if (info.id == *id) {
          holds = true;
          usable = usable || info.problem.empty();
        } else {
          others_usable = others_usable || info.problem.empty();
        }
      }
      if (holds) {
        holding.push_back(store);
      }
    }
    if (holding.empty()) {
      throw Error(ErrorKind::not_found, "no wrapped key " + *id + ": see `mybackup key list` for the ids");
    }
    if (usable && !others_usable && !*force) {
      throw Error(ErrorKind::usage, "key " + *id + " is the last passphrase-wrapped key: without it no passphrase opens the "
                                    "backups (only the key file does); add another with `mybackup key add` first, or use --force");
    }
    for (Backend* store : holding) {
      const std::string where = stores.where(store);
      remove_wrapped_key(*store, *id, LastKey::allow);
      context.log().info("key remove: wrapped key {} removed ({}){}", *id, where, *force ? " --force" : "");
      say(context, "Removed key " + *id + (where == "pending" ? " (pending in the home)" : " from " + stores.destination));
    }
  });
}

void register_check(CLI::App& parent, Context& context) {
  auto* command = parent.add_subcommand("check", "Check that a passphrase unlocks this home's key (changes nothing)");
  auto passphrase_file = std::make_shared<std::string>();
  command->add_option("--passphrase-file", *passphrase_file,
                      "Read the passphrase from the first line of FILE (else $MYBACKUP_PASSPHRASE, else asked)");
  add_example(*command, "mybackup key check    # exit 0: the passphrase works; exit 4: it does not");
  command->callback([&context, passphrase_file] {
    const std::unique_ptr<Session> session = context.open_session();
    const MasterKey& key = session->key();
    KeyStores stores = open_stores(*session);
    std::vector<std::pair<Backend*, UnlockPlan>> plans;
    for (Backend* store : stores.stores()) {
      plans.emplace_back(store, plan_unlock_reporting(context, *store));
    }
    Passphrase passphrase;
    read_passphrase(*passphrase_file, PassphraseUse::existing, passphrase);
    std::size_t tried = 0;
    std::size_t left_out = 0;
    std::optional<Error> unusable;  // a store whose key files cannot be tried (named in the warnings)
    for (const auto& [store, plan] : plans) {
      std::optional<MasterKey> unlocked;
      left_out += plan.files - plan.keys.size();
      try {
        unlocked = unlock_with_passphrase(plan, passphrase.text());
      } catch (const Error& error) {
        if (error.kind() == ErrorKind::wrong_key) {
          tried += plan.keys.size();
        } else if (error.kind() == ErrorKind::corrupt) {
          unusable = unusable.value_or(error);
        } else if (error.kind() != ErrorKind::not_found) {
          throw;
        }
        continue;
      }
      if (unlocked->bytes != key.bytes) {
        throw Error(ErrorKind::wrong_key, "the passphrase opens a wrapped copy of another key than " +
                                              context.home().key_path(session->config()) + ": remove it (see `mybackup key list`)");
      }
      context.log().info("key check: the passphrase opens the key ({})", stores.where(store));
      say(context, "The passphrase unlocks this key (" + stores.where(store) + ")");
      return;
    }
    if (tried > 0) {
      throw Error(ErrorKind::wrong_key, "the passphrase opens none of this key's passphrase-wrapped copies (" +
                                            std::to_string(tried) + " tried" +
                                            (left_out == 0 ? "" : ", " + std::to_string(left_out) + " more not tried: see the warnings") +
                                            "): check it, or see `mybackup key list`");
    }
    if (unusable) {
      throw *unusable;
    }
    throw Error(ErrorKind::not_found, "no passphrase-wrapped keys: add one with `mybackup key add`");
  });
}

}  // namespace

void report_key_warnings(Context& context, const std::vector<std::string>& warnings) {
  for (const std::string& warning : warnings) {
    print_error("mybackup: warning: " + warning);
    context.log().warn("{}", warning);
  }
}

UnlockPlan plan_unlock_reporting(Context& context, const Backend& key_store) {
  UnlockPlan plan = plan_unlock(key_store);
  report_key_warnings(context, plan.warnings);
  return plan;
}

void register_key(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("key", "Export the key; add, list, remove or check the passphrases that unlock it");
  command->require_subcommand(1);
  add_example(*command, "mybackup key add --label offsite && mybackup key list");
  register_export(*command, context);
  register_add(*command, context);
  register_list(*command, context);
  register_remove(*command, context);
  register_check(*command, context);
}

}  // namespace mybackup::cli
