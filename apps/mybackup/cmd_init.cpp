// `mybackup init`: create the home (config, key, catalog): new, optionally with a
// passphrase-wrapped copy of the key for the destination, or recovered from an existing
// destination (--from).

#include <spdlog/spdlog.h>

#include <chrono>

#include "cli.hpp"
#include "mybackup/crypto/key_wrap.hpp"
#include "mybackup/session/session.hpp"
#include "mybackup/util/clock.hpp"
#include "mybackup/util/error.hpp"

namespace mybackup::cli {

namespace {

struct InitFlags {
  bool force = false;
  bool passphrase = false;      // new: wrap the key; --from: unlock it with a passphrase
  std::string passphrase_file;  // implies passphrase
  std::string from;             // an existing destination to recover from
  std::string key_file;         // its key (as `key export` wrote it)

  bool wants_passphrase() const { return passphrase || !passphrase_file.empty(); }
};

void initialize_new(Context& context, const InitFlags& flags) {
  const Home& home = context.home();
  const bool wrap = flags.wants_passphrase();
  Passphrase passphrase;
  if (wrap) {
    if (home.initialized() && !flags.force) {
      home.initialize(false, "");  // refuses (Error(exists)) before asking for anything
    }
    read_passphrase(flags.passphrase_file, PassphraseUse::new_one, passphrase);
    new_key_scrypt_params();  // a bad test setting fails before anything is created
  }
  home.initialize(flags.force, format_utc(system_clock().now_ns()));
  context.log().info("init: initialized {}{}", home.root(), flags.force ? " (--force)" : "");
  say(context, "Initialized mybackup in " + home.root());
  say(context, "  key: " + home.root() + "/key  (copy it somewhere safe: without it your backups cannot be read)");
  if (wrap) {
    const Config config = context.load_config();
    const MasterKey key = load_key_file(home.key_path(config));
    const WrappedKey wrapped = wrap_master_key(key, passphrase.text(), new_key_scrypt_params(), new_key_details("init"));
    add_wrapped_key(*home.pending_keys(), wrapped);
    context.log().info("init: wrapped key {} made (pending until the first backup)", wrapped.id);
    say(context, "  passphrase: key " + wrapped.id + " goes to the destination at the first backup (with the destination "
                 "and this passphrase, the backups can be recovered anywhere)");
  }
  say(context, "Next: mybackup add DIR, then mybackup config set destination DIR, then mybackup backup");
}

/// A fresh machine: the key from a file or a passphrase, the settings and the catalog from the
/// destination.
void initialize_from(Context& context, const InitFlags& flags) {
  const auto started = std::chrono::steady_clock::now();
  if (flags.key_file.empty() == !flags.wants_passphrase()) {
    throw Error(ErrorKind::usage, "init --from needs the repository's key, one way: --key-file FILE (the file `mybackup "
                                  "key export` wrote, or the old home's key file) or --passphrase");
  }
  const Home& home = context.home();
  const KeySource key_source = [&](const Backend& key_store) {
    if (!flags.key_file.empty()) {
      return load_key_file(flags.key_file);
    }
    const UnlockPlan plan = plan_unlock_reporting(context, key_store);
    Passphrase passphrase;
    read_passphrase(flags.passphrase_file, PassphraseUse::existing, passphrase);
    return unlock_with_passphrase(plan, passphrase.text());
  };
  const RecoveryReport report = recover_home(home, flags.from, key_source, flags.force);
  const CatalogSummary& summary = report.summary;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  context.log().info("init: recovered {} from {}: {} runs, {} files, {} versions in {:.2f}s", home.root(), report.destination,
                     report.runs, summary.files, summary.versions, seconds);
  say(context, "Recovered mybackup in " + home.root() + " from " + report.destination + " in " + format_duration(seconds));
  say(context, "  " + counted(report.runs, "run") + ", " + counted(summary.files, "file") + ", " +
                   counted(summary.versions, "version") + " in history (" + format_bytes(summary.stored_bytes) + " stored)");
  say(context, "  sources: " + source_paths(report.config) +
                   (report.settings_recorded ? "" : " (no settings were recorded: add sources again)"));
  say(context, "  key: " + home.root() + "/key  (keep a copy somewhere safe)");
  report_manifest_problems(context, report.manifest_problems);
  say(context, "Next: mybackup restore --list, or mybackup backup to go on backing up");
}

}  // namespace

void register_init(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("init", "Create the configuration, the encryption key and the catalog");
  auto flags = std::make_shared<InitFlags>();
  command->add_flag("--force", flags->force, "Start over in an existing home (the old key, config and catalog are kept as *.old-*)");
  command->add_flag("--passphrase", flags->passphrase,
                    "New home: also protect a copy of the key with a passphrase, stored on the destination (with the "
                    "destination and the passphrase alone, the backups can be recovered on another computer). "
                    "With --from: unlock the repository with its passphrase");
  command->add_option("--passphrase-file", flags->passphrase_file,
                      "Read the passphrase from the first line of FILE (implies --passphrase; else $MYBACKUP_PASSPHRASE, "
                      "else asked on the terminal)");
  command->add_option("--from", flags->from,
                      "Recover from an existing destination: its settings and catalog are rebuilt from what it holds");
  command->add_option("--key-file", flags->key_file, "With --from: the repository's key file (from `mybackup key export`)");
  add_example(*command,
              "mybackup init --passphrase   # creates ~/.mybackup/{config.yaml,key,backups.db}, asks a passphrase\n"
              "  mybackup init --from /mnt/backups --passphrase   # a new computer");
  command->callback([&context, flags] {
    if (flags->from.empty()) {
      if (!flags->key_file.empty()) {
        throw Error(ErrorKind::usage, "--key-file goes with --from DESTINATION (recovering an existing repository)");
      }
      initialize_new(context, *flags);
    } else {
      initialize_from(context, *flags);
    }
  });
}

}  // namespace mybackup::cli
