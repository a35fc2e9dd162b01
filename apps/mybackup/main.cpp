// mybackup: incremental, deduplicated, compressed and encrypted backups.
// This file wires the command groups together and turns errors into one line and an exit code.

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>

#include "cli.hpp"
#include "mybackup/util/display_text.hpp"
#include "mybackup/util/error.hpp"

namespace {
/// The first word that is neither an option nor a known command, if it comes before any command
/// (CLI11 alone would only say "A subcommand is required").
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--home") {
      ++i;  // its value
      continue;
    }
    if (word.empty() || word[0] == '-') {
      continue;
    }
    for (const CLI::App* command : app.get_subcommands({})) {
      if (command->check_name(word)) {
        return "";
      }
    }
    return word;
  }
  return "";
}
}  // namespace

int main(int argc, char** argv) {
  using namespace mybackup;
  using namespace mybackup::cli;
  protect_process();
  // The backup pipeline allocates and frees many chunk-sized buffers from several threads. With
  // glibc's default (a threshold that grows after each free), those end up in per-thread heaps
  // that keep the memory; a fixed threshold maps them directly and returns them on free, which
  // keeps peak RSS at what the queues hold.
  if (std::getenv("MYBACKUP_NO_MALLOPT") == nullptr) { mallopt(M_MMAP_THRESHOLD, 256 * 1024); }

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
      "\nExit codes: 0 ok, 1 error, 2 usage, 3 done but some files were skipped, 4 wrong key or passphrase.\n"
      "Example:\n  mybackup init && mybackup add ~/Documents && mybackup config set destination /mnt/backups && mybackup backup");

  // Command-line mistakes read like every other error: one line, the problem, where to look.
  app.failure_message([](const CLI::App*, const CLI::Error& error) {
    return display_text(std::string("mybackup: error: ") + error.what() + " (see mybackup --help)") + "\n";
  });

  register_init(app, context);
  register_sources(app, context);
  register_config(app, context);
  register_backup(app, context);
  register_status(app, context);
  register_history(app, context);
  register_restore(app, context);
  register_clean(app, context);
  register_sync(app, context);
  register_schedule(app, context);
  register_verify(app, context);
  register_key(app, context);
  register_watch(app, context);

  if (const std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
    print_error("mybackup: error: unknown command '" + unknown + "' (see mybackup --help for the commands)");
    return kUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? kOk : kUsage;
  } catch (const Error& error) {
    print_error(std::string("mybackup: error: ") + error.what());
    context.log().error("{} failed: {} [{}]", app.get_subcommands().empty() ? "mybackup" : app.get_subcommands()[0]->get_name(),
                        error.what(), to_string(error.kind()));
    return error.kind() == ErrorKind::usage ? kUsage : error.kind() == ErrorKind::wrong_key ? kWrongKey : kError;
  } catch (const std::exception& error) {
    print_error(std::string("mybackup: error: ") + error.what());
    context.log().error("unexpected error: {}", error.what());
    return kError;
  }
  return context.exit_code;
}
