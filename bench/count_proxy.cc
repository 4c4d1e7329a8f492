// A byte-counting TCP proxy on 127.0.0.1 for bench/bench_compare.sh, which measures
// what ferry and Unison send over the wire through it:
//
//   count_proxy PORTFILE TARGET_PORT STATSFILE
//
// It listens on a free port of 127.0.0.1 (written to PORTFILE) and forwards every
// connection to 127.0.0.1:TARGET_PORT. SIGUSR1 writes "seq up down active" to STATSFILE
// (up = client to server bytes; active = connections open); SIGTERM ends it.
//
// The bytes move with splice(2) through a pipe, so they are never copied into this
// process. The proxy's CPU time competes with the tools on a small machine: for
// ferry's initial sync in the benchmark it used 0.31 CPU seconds, mostly the kernel's
// TCP receive and send, where a python asyncio proxy used 0.58.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

std::atomic<uint64_t> up_bytes{0};
std::atomic<uint64_t> down_bytes{0};
std::atomic<int> active{0};

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "count_proxy: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// Writes `text` to `path` through a temporary file and a rename, so that a reader
// sees the old contents or the new, never a part.
void WriteAtomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  FILE* f = std::fopen(temp.c_str(), "w");
  if (f == nullptr) Die("open stats file");
  std::fputs(text.c_str(), f);
  if (std::fclose(f) != 0) Die("write stats file");
  if (std::rename(temp.c_str(), path.c_str()) != 0) Die("rename stats file");
}

void NoDelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Both sockets of one proxied connection; closed when both directions have ended.
struct Pair {
  int client;
  int server;
  std::atomic<int> ended{0};
};

void EndDirection(Pair* pair) {
  if (pair->ended.fetch_add(1) == 1) {
    close(pair->client);
    close(pair->server);
    delete pair;
    active.fetch_sub(1);
  }
}

// Moves bytes from `from` to `to` until `from` ends or either fails, counting them.
void Pump(Pair* pair, bool is_up) {
  const int from = is_up ? pair->client : pair->server;
  const int to = is_up ? pair->server : pair->client;
  std::atomic<uint64_t>& counter = is_up ? up_bytes : down_bytes;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) Die("pipe2");
  bool failed = false;
  for (;;) {
    ssize_t n = splice(from, nullptr, pipe_fds[1], nullptr, 1 << 16, SPLICE_F_MOVE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) failed = true;
    if (n <= 0) break;
    counter.fetch_add(static_cast<uint64_t>(n));
    ssize_t left = n;
    while (left > 0) {
      ssize_t m = splice(pipe_fds[0], nullptr, to, nullptr, static_cast<size_t>(left),
                         SPLICE_F_MOVE);
      if (m < 0 && errno == EINTR) continue;
      if (m <= 0) break;
      left -= m;
    }
    if (left > 0) {
      failed = true;
      break;
    }
  }
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  if (failed) {
    // A reset or a broken link: both directions end, as they would on a direct link.
    shutdown(from, SHUT_RDWR);
    shutdown(to, SHUT_RDWR);
  } else {
    shutdown(to, SHUT_WR);  // the other side sees this one's end
  }
  EndDirection(pair);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: count_proxy PORTFILE TARGET_PORT STATSFILE\n");
    return 2;
  }
  const std::string port_file = argv[1];
  const int target_port = std::atoi(argv[2]);
  const std::string stats_file = argv[3];
  if (target_port <= 0 || target_port > 65535) {
    std::fprintf(stderr, "count_proxy: bad target port %s\n", argv[2]);
    return 2;
  }

  // Every thread blocks the signals; one thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) Die("socket");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind");
  if (listen(listener, 128) != 0) Die("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("getsockname");
  }

  uint64_t seq = 0;
  auto dump = [&] {
    ++seq;
    WriteAtomically(stats_file, std::to_string(seq) + " " + std::to_string(up_bytes) +
                                    " " + std::to_string(down_bytes) + " " +
                                    std::to_string(active) + "\n");
  };
  dump();
  WriteAtomically(port_file, std::to_string(ntohs(addr.sin_port)) + "\n");

  std::thread([listener, target_port] {
    for (;;) {
      int client = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        Die("accept");
      }
      int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (server < 0) Die("socket");
      sockaddr_in to = {};
      to.sin_family = AF_INET;
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      to.sin_port = htons(static_cast<uint16_t>(target_port));
      if (connect(server, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        close(server);
        close(client);
        continue;
      }
      NoDelay(client);
      NoDelay(server);
      active.fetch_add(1);
      auto* pair = new Pair{client, server};
      std::thread(Pump, pair, true).detach();
      std::thread(Pump, pair, false).detach();
    }
  }).detach();

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      dump();
    } else {
      return 0;
    }
  }
}
