#include "tests/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace ferry::testing {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `pid` until the deadline; -1 when it did not exit in time.
int WaitExit(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (done < 0 || RemainingMs(deadline) == 0) return -1;
    // A pidfd would avoid the poll; 10 ms steps bound the wait without busy-looping.
    ::poll(nullptr, 0, 10);
  }
}

// fork + exec, with the child killed when the test process dies (a crashed test must
// not leave a ferryd behind holding ctest's pipes). Only async-signal-safe calls
// between fork and exec.
pid_t Spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd,
            int stderr_fd) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) {
    ::_exit(127);
  }
  ::execve(args[0], args.data(), environ);
  ::_exit(127);
}

}  // namespace

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  // In bulk: a character at a time is slow enough in a debug build to be most of a
  // crash_test round, which reads every file of a folder.
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

std::string FerrydPath() { return FERRY_FERRYD_PATH; }
std::string FerryPath() { return FERRY_CLI_PATH; }

CommandResult RunFerry(const std::string& home, const std::vector<std::string>& args,
                       int timeout_ms) {
  std::vector<std::string> argv = {FerryPath(), "--home", home};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, "", timeout_ms);
}

CommandResult RunFerryLogin(const std::string& home, const std::string& server,
                            const std::string& user, const std::string& passphrase_file,
                            bool create, int timeout_ms) {
  std::vector<std::string> args = create ? std::vector<std::string>{"account", "create"}
                                         : std::vector<std::string>{"login"};
  args.insert(args.end(),
              {"--server", server, "--user", user, "--passphrase-file", passphrase_file});
  return RunFerry(home, args, timeout_ms);
}

uint64_t ReportedSeq(const std::string& out) {
  size_t at = out.rfind("at seq ");
  return at == std::string::npos ? 0 : std::stoull(out.substr(at + 7));
}

TempDir::TempDir() {
  char pattern[] = "/tmp/ferry-test-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) ::abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input,
                         int timeout_ms) {
  CommandResult result;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(err, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  pid_t pid = Spawn(argv, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    result.err = "cannot start " + argv[0];
    return result;
  }
  if (!input.empty() && ::write(in[1], input.data(), input.size()) < 0) {
    // The command may not read stdin at all.
  }
  ::close(in[1]);
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && RemainingMs(deadline) > 0) {
    if (::poll(fds, 2, RemainingMs(deadline)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<size_t>(n));
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  if (open_fds > 0) ::kill(pid, SIGKILL);
  result.exit_code = WaitExit(pid, Clock::now() + std::chrono::seconds(10));
  return result;
}

BackgroundCommand::BackgroundCommand(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return;
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return;
  }
  int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = Spawn(argv, null_in, out[1], err[1]);
  ::close(null_in);
  ::close(out[1]);
  ::close(err[1]);
  fds_[0] = out[0];
  fds_[1] = err[0];
}

BackgroundCommand::~BackgroundCommand() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    WaitExit(pid_, Clock::now() + std::chrono::seconds(20));
  }
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

bool BackgroundCommand::ReadSome(int wait_ms) {
  pollfd fds[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
  if (fds_[0] < 0 && fds_[1] < 0) return false;
  if (::poll(fds, 2, wait_ms) <= 0) return true;
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0 || fds[i].revents == 0) continue;
    char buffer[4096];
    ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
    if (n <= 0) {
      ::close(fds_[i]);
      fds_[i] = -1;
    } else {
      (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
    }
  }
  return true;
}

bool BackgroundCommand::WaitFor(const std::string& text, int timeout_ms, size_t from,
                                bool in_stderr) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string& where = in_stderr ? err_ : out_;
  for (;;) {
    if (where.size() > from && where.find(text, from) != std::string::npos) return true;
    if (RemainingMs(deadline) == 0 || !ReadSome(RemainingMs(deadline))) return false;
  }
}

int BackgroundCommand::Signal(int sig, int timeout_ms) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // Drains its pipes while it shuts down, so that it never blocks writing to them.
  while (RemainingMs(deadline) > 0 && ReadSome(RemainingMs(deadline))) {
  }
  int code = WaitExit(pid_, deadline);
  if (code == -1) {
    ::kill(pid_, SIGKILL);
    WaitExit(pid_, Clock::now() + std::chrono::seconds(20));
  }
  pid_ = -1;
  return code;
}

FerrydProcess::FerrydProcess(std::string data_dir, std::vector<std::string> extra_args,
                             std::string listen)
    : data_dir_(std::move(data_dir)) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    error_ = "pipe failed";
    return;
  }
  int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // ferryd's log goes to a file beside its data, not to the test's own stderr.
  std::string log_path = data_dir_ + ".log";
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  std::vector<std::string> argv = {FerrydPath(), "--data", data_dir_, "--listen", listen};
  if (std::find(extra_args.begin(), extra_args.end(), "--log-level") ==
      extra_args.end()) {
    argv.insert(argv.end(), {"--log-level", "warn"});
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = Spawn(argv, null_in, out[1], log);
  ::close(null_in);
  ::close(log);
  ::close(out[1]);
  stdout_fd_ = out[0];
  if (pid_ < 0) {
    error_ = "cannot start ferryd";
    return;
  }
  // ferryd prints "ferryd listening on ADDR" and "fingerprint FP" once it serves.
  std::string printed;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (fingerprint_.empty() && RemainingMs(deadline) > 0) {
    pollfd p = {stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, RemainingMs(deadline)) <= 0) continue;
    char buffer[1024];
    ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
    if (n <= 0) break;
    printed.append(buffer, static_cast<size_t>(n));
    size_t at = printed.find("listening on ");
    size_t fp = printed.find("fingerprint ");
    if (at != std::string::npos && fp != std::string::npos &&
        printed.find('\n', fp) != std::string::npos) {
      address_ = printed.substr(at + 13, printed.find('\n', at) - at - 13);
      fingerprint_ = printed.substr(fp + 12, printed.find('\n', fp) - fp - 12);
    }
  }
  if (fingerprint_.empty()) {
    error_ = "ferryd did not start: " + printed + ReadWholeFile(log_path);
    address_.clear();
  }
}

FerrydProcess::~FerrydProcess() {
  if (pid_ > 0) Kill9();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

int FerrydProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int code = WaitExit(pid_, Clock::now() + std::chrono::seconds(20));
  if (code == -1) ::kill(pid_, SIGKILL);
  pid_ = -1;
  return code;
}

void FerrydProcess::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  WaitExit(pid_, Clock::now() + std::chrono::seconds(20));
  pid_ = -1;
}

}  // namespace ferry::testing
