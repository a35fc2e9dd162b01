// mybackup_test_sshd: the tests' OpenSSH server (sshd_server.hpp) as a program, for the remote
// benchmarks (bench/run_remote.sh). Starts the server, writes "export NAME=value" lines
// (SSHD_PORT, SSHD_USER, SSHD_IDENTITY, SSHD_KNOWN_HOSTS) to the file given as its argument, and
// serves until SIGTERM or SIGINT, when it stops the server and removes its folder.

#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>

#include "servers/sshd_server.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mybackup_test_sshd ENV_FILE\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    const mybackup::test_servers::SshdServer server;
    {
      std::ofstream out(argv[1]);
      out << "export SSHD_PORT=" << server.port() << "\nexport SSHD_USER=" << server.user()
          << "\nexport SSHD_IDENTITY=" << server.user_key() << "\nexport SSHD_KNOWN_HOSTS=" << server.known_hosts() << "\n";
      if (!out) {
        std::fprintf(stderr, "mybackup_test_sshd: cannot write %s\n", argv[1]);
        return 1;
      }
    }
    int signal = 0;
    sigwait(&stop, &signal);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "mybackup_test_sshd: %s\n", error.what());
    return 1;
  }
  return 0;
}
