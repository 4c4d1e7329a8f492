// Test helpers that run the real binaries: ferryd as a server process, ferry as a
// command. Every wait is bounded.
#ifndef FERRY_TESTS_PROCESS_H_
#define FERRY_TESTS_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace ferry::testing {

// A fresh directory under /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] is the program path) with `input` on stdin; kills it after
// `timeout_ms`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::string& input = "", int timeout_ms = 60000);

// The real `ferry --home HOME ARGS...`, as RunCommand runs it.
CommandResult RunFerry(const std::string& home, const std::vector<std::string>& args,
                       int timeout_ms = 60000);

// `ferry account create` (`create`) or `ferry login` of the device in `home`, as
// user `user` of the ferryd at `server`, the passphrase read from `passphrase_file`.
CommandResult RunFerryLogin(const std::string& home, const std::string& server,
                            const std::string& user, const std::string& passphrase_file,
                            bool create, int timeout_ms = 60000);

// The seq a successful `ferry sync` reports in `out` ("..., at seq N"); 0 when none.
uint64_t ReportedSeq(const std::string& out);

// A ferryd process on 127.0.0.1 with a free port.
class FerrydProcess {
 public:
  // Starts ferryd on `data_dir` and waits (bounded) until it prints its address.
  // Check ok() after construction; error() says what went wrong.
  // `listen`: host:port, port 0 for a free one (a restart passes the old address).
  // ferryd logs at warn unless `extra_args` holds a --log-level; its log is the file
  // `data_dir` + ".log".
  explicit FerrydProcess(std::string data_dir, std::vector<std::string> extra_args = {},
                         std::string listen = "127.0.0.1:0");
  ~FerrydProcess();

  bool ok() const { return pid_ > 0 && !address_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& address() const { return address_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& data_dir() const { return data_dir_; }

  // SIGTERM, then waits for a clean exit; returns the exit code (-1 on a timeout).
  int Stop();
  // SIGKILL, no chance to clean up.
  void Kill9();

 private:
  std::string data_dir_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string fingerprint_;
  std::string error_;
};

// A command left running (`ferry watch`), its stdout and stderr collected as it
// prints. The destructor kills it if it still runs.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::vector<std::string>& argv);
  ~BackgroundCommand();
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  bool ok() const { return pid_ > 0; }
  // Reads what it prints until `text` appears in its stdout (or stderr when
  // `in_stderr`), searching from byte `from`, or until `timeout_ms` passes. Returns
  // whether it appeared.
  bool WaitFor(const std::string& text, int timeout_ms, size_t from = 0,
               bool in_stderr = false);
  // Sends `sig`, then reads until it exits; its exit code, -1 when it did not exit
  // within `timeout_ms` (it is then killed) or died of a signal.
  int Signal(int sig, int timeout_ms);
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  // Reads what is there, waiting at most `wait_ms`; false once both pipes are closed.
  bool ReadSome(int wait_ms);
  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};  // stdout, stderr
  std::string out_, err_;
};

// The bytes of a file; "" when it cannot be read.
std::string ReadWholeFile(const std::string& path);

std::string FerrydPath();
std::string FerryPath();

}  // namespace ferry::testing

#endif  // FERRY_TESTS_PROCESS_H_
