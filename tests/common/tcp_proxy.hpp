#pragma once
// A TCP proxy on loopback for fault tests of remote destinations: it forwards connections to a
// real server and, when told, cuts them after a number of bytes in one direction (a server dying
// mid-upload or mid-download, a dropped connection), or refuses every new one (a server gone).
// Header-only; each connection is served by its own thread; the destructor stops them all.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mybackup::testing {

class TcpProxy {
 public:
  enum class Direction { to_server, to_client };

  explicit TcpProxy(int target_port) : target_port_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback(0);
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 64) != 0) {
      throw std::runtime_error("the test proxy cannot listen on loopback");
    }
    socklen_t length = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~TcpProxy() {
    stop_ = true;
    acceptor_.join();
    ::close(listener_);
    std::lock_guard lock(mutex_);
    for (std::thread& thread : connections_) {
      thread.join();
    }
  }

  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }

  /// The next `count` connections (every one if count < 0) are cut once `bytes` have gone in
  /// `direction`.
  void cut_after(Direction direction, std::uint64_t bytes, int count) {
    std::lock_guard lock(mutex_);
    cut_direction_ = direction;
    cut_bytes_ = bytes;
    cuts_left_ = count;
  }

  /// While true, new connections are closed at once, as by a server that is gone.
  void refuse(bool refusing) { refusing_ = refusing; }

  int connections_seen() const { return seen_; }
  int connections_cut() const { return cut_; }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    return address;
  }

  void accept_loop() {
    while (!stop_) {
      pollfd wait{listener_, POLLIN, 0};
      if (::poll(&wait, 1, 50) <= 0) {
        continue;
      }
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        continue;
      }
      ++seen_;
      if (refusing_) {
        ::close(client);
        continue;
      }
      std::uint64_t limit = 0;
      Direction direction = Direction::to_server;
      {
        std::lock_guard lock(mutex_);
        if (cuts_left_ != 0) {
          limit = cut_bytes_;
          direction = cut_direction_;
          if (cuts_left_ > 0) {
            --cuts_left_;
          }
        }
        connections_.emplace_back([this, client, limit, direction] { forward(client, limit, direction); });
      }
    }
  }

  /// Copies bytes both ways until either side closes, or `limit` bytes (0: no limit) have gone in
  /// `direction`, when both sockets are reset.
  void forward(int client, std::uint64_t limit, Direction direction) {
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback(target_port_);
    if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(client);
      if (server >= 0) {
        ::close(server);
      }
      return;
    }
    std::uint64_t sent[2] = {0, 0};  // to_server, to_client
    char buffer[16384];
    bool open = true;
    while (open && !stop_) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(fds, 2, 50) <= 0) {
        continue;
      }
      for (int side = 0; side < 2 && open; ++side) {
        if ((fds[side].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
          continue;
        }
        const int from = side == 0 ? client : server;
        const int to = side == 0 ? server : client;
        std::size_t want = sizeof buffer;
        const bool limited = limit != 0 && static_cast<int>(direction) == side;
        if (limited) {
          want = static_cast<std::size_t>(std::min<std::uint64_t>(want, limit - sent[side]));
        }
        const ssize_t got = ::read(from, buffer, want);
        if (got <= 0 || ::send(to, buffer, static_cast<std::size_t>(got), MSG_NOSIGNAL) != got) {
          open = false;
          break;
        }
        sent[side] += static_cast<std::uint64_t>(got);
        if (limited && sent[side] >= limit) {
          ++cut_;
          linger reset{1, 0};  // close with RST: the peer sees a reset connection
          ::setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
          ::setsockopt(server, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
          open = false;
        }
      }
    }
    ::close(client);
    ::close(server);
  }

  int target_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> refusing_{false};
  std::atomic<int> seen_{0};
  std::atomic<int> cut_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> connections_;
  Direction cut_direction_ = Direction::to_server;
  std::uint64_t cut_bytes_ = 0;
  int cuts_left_ = 0;
};

}  // namespace mybackup::testing
