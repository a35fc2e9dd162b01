// `mybackup init`: create the home (config, key, catalog).

#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "mybackup/clock.hpp"

namespace mybackup::cli {

void register_init(CLI::App& app, Context& context) {
  auto* command = app.add_subcommand("init", "Create the configuration, the encryption key and the catalog");
  auto force = std::make_shared<bool>(false);
  command->add_flag("--force", *force, "Start over in an existing home (the old key, config and catalog are kept as *.old-*)");
  add_example(*command, "mybackup init            # creates ~/.mybackup/{config.yaml,key,backups.db}");
  command->callback([&context, force] {
    const Home& home = context.home();
    home.initialize(*force, format_utc(system_clock().now_ns()));
    context.log().info("init: initialized {}{}", home.root(), *force ? " (--force)" : "");
    say(context, "Initialized mybackup in " + home.root());
    say(context, "  key: " + home.root() + "/key  (copy it somewhere safe: without it your backups cannot be read)");
    say(context, "Next: mybackup add DIR, then mybackup config set destination DIR, then mybackup backup");
  });
}

}  // namespace mybackup::cli
