// `mybackup init`: create the home (config, key, catalog), and with --passphrase a
// passphrase-wrapped copy of the key for the destination.

#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "mybackup/clock.hpp"
#include "mybackup/key_wrap.hpp"

namespace mybackup::cli {

void register_init(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("init", "Create the configuration, the encryption key and the catalog");
  auto force = std::make_shared<bool>(false);
  auto with_passphrase = std::make_shared<bool>(false);
  auto passphrase_file = std::make_shared<std::string>();
  command->add_flag("--force", *force, "Start over in an existing home (the old key, config and catalog are kept as *.old-*)");
  command->add_flag("--passphrase", *with_passphrase,
                    "Also protect a copy of the key with a passphrase, stored on the destination: with the destination "
                    "and the passphrase alone, the backups can be recovered on another computer");
  command->add_option("--passphrase-file", *passphrase_file,
                      "Read the passphrase from the first line of FILE (implies --passphrase; else $MYBACKUP_PASSPHRASE, "
                      "else asked on the terminal)");
  add_example(*command, "mybackup init --passphrase   # creates ~/.mybackup/{config.yaml,key,backups.db}, asks a passphrase");
  command->callback([&context, force, with_passphrase, passphrase_file] {
    const Home& home = context.home();
    const bool wrap = *with_passphrase || !passphrase_file->empty();
    Passphrase passphrase;
    if (wrap) {
      if (home.initialized() && !*force) {
        home.initialize(false, "");  // refuses (Error(exists)) before asking for anything
      }
      read_passphrase(*passphrase_file, PassphraseUse::new_one, passphrase);
      new_key_scrypt_params();  // a bad test setting fails before anything is created
    }
    home.initialize(*force, format_utc(system_clock().now_ns()));
    context.log().info("init: initialized {}{}", home.root(), *force ? " (--force)" : "");
    say(context, "Initialized mybackup in " + home.root());
    say(context, "  key: " + home.root() + "/key  (copy it somewhere safe: without it your backups cannot be read)");
    if (wrap) {
      const Config config = context.load_config();
      const MasterKey key = load_key_file(home.key_path(config));
      const WrappedKey wrapped = wrap_master_key(key, passphrase.text(), new_key_scrypt_params(), new_key_details("init"));
      add_wrapped_key(*pending_keys(home), wrapped);
      context.log().info("init: wrapped key {} made (pending until the first backup)", wrapped.id);
      say(context, "  passphrase: key " + wrapped.id + " goes to the destination at the first backup (with the destination "
                   "and this passphrase, the backups can be recovered anywhere)");
    }
    say(context, "Next: mybackup add DIR, then mybackup config set destination DIR, then mybackup backup");
  });
}

}  // namespace mybackup::cli
