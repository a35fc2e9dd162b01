// mybackup: incremental, deduplicated, compressed and encrypted backups.
// This file wires the command groups together and turns errors into one line and an exit code.

#include <spdlog/spdlog.h>

#include <iostream>

#include "cli.hpp"
#include "mybackup/error.hpp"

int main(int argc, char** argv) {
  using namespace mybackup;
  using namespace mybackup::cli;

  CLI::App app{"mybackup: incremental, deduplicated, compressed and encrypted backups"};
  app.name("mybackup");
  app.set_version_flag("--version", std::string("mybackup ") + MYBACKUP_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  Context context;
  app.add_option("--home", context.home_option, "State directory (default: $MYBACKUP_HOME or ~/.mybackup)")
      ->envname("MYBACKUP_HOME");
  app.add_flag("-q,--quiet", context.quiet, "Print nothing but errors");
  app.footer(
      "\nExit codes: 0 ok, 1 error, 2 usage, 3 done but some files were skipped.\n"
      "Example:\n  mybackup init && mybackup add ~/Documents && mybackup config set destination /mnt/backups && mybackup backup");

  register_init(app, context);
  register_sources(app, context);
  register_config(app, context);
  register_backup(app, context);
  register_status(app, context);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? kOk : kUsage;
  } catch (const Error& error) {
    std::cerr << "mybackup: error: " << error.what() << '\n';
    context.log().error("{} failed: {} [{}]", app.get_subcommands().empty() ? "mybackup" : app.get_subcommands()[0]->get_name(),
                        error.what(), to_string(error.kind()));
    return error.kind() == ErrorKind::usage ? kUsage : kError;
  } catch (const std::exception& error) {
    std::cerr << "mybackup: error: " << error.what() << '\n';
    context.log().error("unexpected error: {}", error.what());
    return kError;
  }
  return context.exit_code;
}
