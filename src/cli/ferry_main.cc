// ferry: the command-line client. A thin shell over the client library.
#include <fcntl.h>
#ifdef FERRY_WITH_TCMALLOC
#include <gperftools/malloc_extension_c.h>
#else
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "src/client/collections.h"
#include "src/client/device.h"
#include "src/client/watch.h"
#include "src/connectors/pim/record.h"
#include "src/core/file_util.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace {

using ferry::StrCat;
using ferry::client::Device;

constexpr size_t kPassphraseBytesMax = 4096;

// Reads a line from /dev/tty without echo.
absl::StatusOr<std::string> Prompt(const std::string& question) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        "no terminal to ask for the passphrase: use --passphrase-file FILE");
  }
  if (::write(fd, question.data(), question.size()) < 0) {
    // The prompt is a courtesy; reading the answer still works.
  }
  termios saved;
  bool restore = ::tcgetattr(fd, &saved) == 0;
  if (restore) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  std::string line;
  char c;
  while (line.size() < kPassphraseBytesMax && ::read(fd, &c, 1) == 1 && c != '\n') {
    line.push_back(c);
  }
  if (restore) ::tcsetattr(fd, TCSAFLUSH, &saved);
  if (::write(fd, "\n", 1) < 0) {
    // As above.
  }
  ::close(fd);
  return line;
}

absl::StatusOr<std::string> ReadPassphrase(const std::string& file, bool confirm) {
  if (!file.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::string text, ferry::ReadFile(file, kPassphraseBytesMax));
    size_t end = text.find('\n');
    if (end != std::string::npos) text.resize(end);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    return text;
  }
  FERRY_ASSIGN_OR_RETURN(std::string first, Prompt("Passphrase: "));
  if (confirm) {
    FERRY_ASSIGN_OR_RETURN(std::string again, Prompt("Passphrase again: "));
    if (again != first) return absl::InvalidArgumentError("the passphrases differ");
  }
  return first;
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "device";
  return name;
}

std::string FormatMs(int64_t ms) {
  if (ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

// Exit codes (also in `ferry --help` and README.md):
constexpr int kExitOk = 0;
constexpr int kExitError = 1;      // anything else: the message says what
constexpr int kExitUsage = 2;      // bad flags or arguments (CLI11)
constexpr int kExitGuard = 3;      // the mass-deletion guard stopped a sync
constexpr int kExitConflicts = 4;  // sync done, with new conflicts (both sides kept)

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "ferry: %s\n", std::string(status.message()).c_str());
  return kExitError;
}

std::string Bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(n);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value,
                units[unit]);
  return text;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

absl::StatusOr<std::vector<ferry::client::LocalCollection>> Selected(
    const std::string& home, const std::string& name) {
  FERRY_ASSIGN_OR_RETURN(auto all, ferry::client::ListLocalCollections(home));
  if (name.empty()) return all;
  for (auto& c : all) {
    if (c.name == name) return std::vector<ferry::client::LocalCollection>{c};
  }
  return absl::NotFoundError(StrCat("this device does not sync '", name,
                                    "': add it with `ferry add ", name, " --path DIR`"));
}

int RunAdd(const std::string& home, const std::string& name, const std::string& kind,
           const std::string& path) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto local = ferry::client::AddCollection(**device, name, kind, path);
  if (!local.ok()) return Fail(local.status());
  std::printf("syncing collection %s (%s) with %s; run `ferry sync` to sync now\n",
              name.c_str(), kind.c_str(), local->root.c_str());
  return kExitOk;
}

void PrintProgress(const std::string& name, const ferry::SyncReport& r) {
  std::fprintf(stderr, "\r%s: pushed %llu items, %s up; pulled %llu items, %s down   ",
               name.c_str(), static_cast<unsigned long long>(r.pushed_items),
               Bytes(r.pushed_bytes).c_str(),
               static_cast<unsigned long long>(r.pulled_items),
               Bytes(r.pulled_bytes).c_str());
}

// The one-line summary of a sync, and what it skipped.
void PrintReport(const std::string& name, const ferry::SyncReport& report) {
  std::printf(
      "%s: pulled %llu items (%s), pushed %llu items (%s), %llu conflicts, at seq "
      "%llu\n",
      name.c_str(), static_cast<unsigned long long>(report.pulled_items),
      Bytes(report.pulled_bytes).c_str(),
      static_cast<unsigned long long>(report.pushed_items),
      Bytes(report.pushed_bytes).c_str(),
      static_cast<unsigned long long>(report.conflicts),
      static_cast<unsigned long long>(report.head_seq));
  for (const auto& [what, why] : report.skipped) {
    std::printf("  skipped %s: %s\n", what.c_str(), why.c_str());
  }
}

int RunSync(const std::string& home, const std::string& name, bool allow_mass_delete) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto selected = Selected(home, name);
  if (!selected.ok()) return Fail(selected.status());
  if (selected->empty()) {
    std::fprintf(stderr, "ferry: nothing to sync: add a collection with `ferry add`\n");
    return kExitError;
  }
  int exit_code = kExitOk;
  bool tty = ::isatty(2) != 0;
  for (const auto& local : *selected) {
    ferry::SyncOptions options;
    options.allow_mass_delete = allow_mass_delete;
    if (tty)
      options.progress = [&](const ferry::SyncReport& r) {
        PrintProgress(local.name, r);
      };
    auto report = ferry::client::SyncCollection(**device, local, options);
    if (tty) std::fprintf(stderr, "\r\033[K");
    if (!report.ok()) {
      std::fprintf(stderr, "ferry: %s: %s\n", local.name.c_str(),
                   std::string(report.status().message()).c_str());
      exit_code =
          absl::IsFailedPrecondition(report.status()) &&
                  report.status().message().find("allow-mass-delete") != std::string::npos
              ? kExitGuard
              : kExitError;
      continue;
    }
    PrintReport(local.name, *report);
    if (report->conflicts > 0 && exit_code == kExitOk) exit_code = kExitConflicts;
  }
  return exit_code;
}

// Gives the memory a finished sync freed back to the system, so that a watching process
// idles small: a large initial sync peaks at well over 100 MB, which the allocator
// would otherwise keep for the life of the process.
void ReleaseFreeMemory() {
#ifdef FERRY_WITH_TCMALLOC
  MallocExtension_ReleaseFreeMemory();
#else
  ::malloc_trim(0);
#endif
}

// `ferry watch`: syncs until SIGINT or SIGTERM (a second one exits at once: a sync
// interrupted anywhere is finished by the next). Prints a sync's summary when it
// moved or skipped anything.
int RunWatch(const std::string& home, const std::string& name, int interval_s,
             bool watch_folders) {
  // Blocked before any thread starts (gRPC's included), so that only the waiting
  // thread below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto selected = Selected(home, name);
  if (!selected.ok()) return Fail(selected.status());
  if (selected->empty()) {
    std::fprintf(stderr, "ferry: nothing to watch: add a collection with `ferry add`\n");
    return kExitError;
  }
  ferry::client::WatchOptions options;
  options.rescan_interval_ms = int64_t{interval_s} * 1000;
  options.watch_folders = watch_folders;
  options.on_folder_error = [](const absl::Status& status) {
    std::fprintf(stderr, "ferry: warning: %s\n", std::string(status.message()).c_str());
  };
  options.on_sync = [](const ferry::client::LocalCollection& local,
                       const absl::StatusOr<ferry::SyncReport>& report) {
    if (!report.ok()) {
      std::fprintf(stderr, "ferry: %s: %s\n", local.name.c_str(),
                   std::string(report.status().message()).c_str());
    } else if (report->pulled_items + report->pushed_items + report->conflicts > 0 ||
               !report->skipped.empty()) {
      PrintReport(local.name, *report);
    }
    ReleaseFreeMemory();
  };
  options.on_disconnect = [](const absl::Status& status) {
    std::fprintf(stderr, "ferry: lost the server (%s); reconnecting\n",
                 std::string(status.message()).c_str());
  };
  size_t count = selected->size();
  ferry::client::Watcher watcher(**device, std::move(*selected), options);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    for (int received = 0;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0 || done.load()) return;
      if (++received > 1) std::_Exit(128 + sig);
      std::fprintf(stderr, "ferry: stopping after the sync in progress\n");
      watcher.Stop();
    }
  });
  std::fprintf(stderr,
               "ferry: watching %zu collection%s (rescan every %d s); Ctrl-C stops\n",
               count, count == 1 ? "" : "s", interval_s);
  watcher.Run();
  done.store(true);
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes its sigwait
  waiter.join();
  return kExitOk;
}

int RunStatus(const std::string& home, bool json) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto all = ferry::client::ListLocalCollections(home);
  if (!all.ok()) return Fail(all.status());
  if (json)
    std::printf("{\"device\": %s, \"collections\": [",
                JsonString((*device)->state().device_id).c_str());
  bool first = true;
  for (const auto& local : *all) {
    auto status = ferry::client::GetLocalStatus(local);
    if (!status.ok()) return Fail(status.status());
    auto head = (*device)->client().Head(local.collection_id);
    uint64_t head_seq = head.ok() ? *head : 0;
    if (json) {
      std::printf(
          "%s{\"name\": %s, \"kind\": %s, \"root\": %s, \"items\": %zu, "
          "\"synced_seq\": %llu, \"head_seq\": %llu, \"push_pending\": %s, "
          "\"conflicts\": %zu}",
          first ? "" : ", ", JsonString(local.name).c_str(),
          JsonString(local.kind).c_str(), JsonString(local.root).c_str(), status->items,
          static_cast<unsigned long long>(status->cursor),
          static_cast<unsigned long long>(head_seq),
          status->push_pending ? "true" : "false", status->conflicts);
    } else {
      std::printf(
          "%-16s %-8s %s\n  %zu items, synced to seq %llu of %llu%s, %zu conflicts\n",
          local.name.c_str(), local.kind.c_str(), local.root.c_str(), status->items,
          static_cast<unsigned long long>(status->cursor),
          static_cast<unsigned long long>(head_seq),
          status->push_pending ? ", a push to retry" : "", status->conflicts);
    }
    first = false;
  }
  if (json) std::printf("]}\n");
  return kExitOk;
}

// A field value for people: the value part of a property, or the whole text of a
// component, on one line.
std::string ShowValue(const std::string& canonical) {
  if (canonical.empty()) return "(removed)";
  std::string_view value = ferry::pim::FieldValueText(canonical);
  std::string out(value.empty() ? std::string_view(canonical) : value);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

int RunConflicts(const std::string& home, bool all_conflicts) {
  auto all = ferry::client::ListLocalCollections(home);
  if (!all.ok()) return Fail(all.status());
  for (const auto& local : *all) {
    auto conflicts = ferry::client::ListConflicts(local);
    if (!conflicts.ok()) return Fail(conflicts.status());
    for (const auto& c : *conflicts) {
      if (c.resolved && !all_conflicts) continue;
      std::printf("%s:%lld  %s  %s  %s%s%s%s%s: %s%s\n", local.name.c_str(),
                  static_cast<long long>(c.id), FormatMs(c.time_ms).c_str(),
                  c.kind.c_str(), c.item_id.c_str(), c.field.empty() ? "" : " ",
                  c.field.c_str(), c.kept_as.empty() ? "" : " -> ", c.kept_as.c_str(),
                  c.detail.c_str(), c.resolved ? " (resolved)" : "");
      if (!c.field.empty()) {
        std::printf("    kept:  %s\n    other: %s\n", ShowValue(c.kept_value).c_str(),
                    ShowValue(c.other_value).c_str());
      }
    }
  }
  return kExitOk;
}

int RunResolve(const std::string& home, const std::string& which,
               const std::string& take) {
  size_t colon = which.rfind(':');
  long long number = 0;
  if (colon == std::string::npos || colon == 0 ||
      std::sscanf(which.c_str() + colon + 1, "%lld", &number) != 1 || number <= 0) {
    std::fprintf(stderr,
                 "ferry: a conflict ID is COLLECTION:NUMBER, as `ferry conflicts` "
                 "prints it\n");
    return kExitUsage;
  }
  std::string name = which.substr(0, colon);
  auto all = ferry::client::ListLocalCollections(home);
  if (!all.ok()) return Fail(all.status());
  for (const auto& local : *all) {
    if (local.name != name) continue;
    auto device = Device::Open(home);
    if (!device.ok()) return Fail(device.status());
    absl::Status resolved = ferry::client::ResolveConflict(**device, local, number, take);
    if (!resolved.ok()) return Fail(resolved);
    std::printf("%s resolved%s\n", which.c_str(),
                take == "kept" ? "" : "; `ferry sync` sends the change");
    return kExitOk;
  }
  return Fail(
      absl::NotFoundError(StrCat("this device syncs no collection '", name, "'")));
}

struct LoginFlags {
  ferry::client::LoginOptions options;
  std::string passphrase_file;
};

void AddLoginFlags(CLI::App* command, LoginFlags* flags) {
  command->add_option("--server", flags->options.server, "ferryd address, HOST:PORT")
      ->required();
  command->add_option("--user", flags->options.user, "account user name")->required();
  command->add_option("--passphrase-file", flags->passphrase_file,
                      "read the passphrase from the first line of FILE (for scripts)");
  command->add_option(
      "--fingerprint", flags->options.fingerprint,
      "SHA256:... the server certificate must have (from ferryd's output)");
  command->add_option("--device-name", flags->options.device_name,
                      "name of this device (default: the host name)");
}

int RunLogin(const std::string& home, LoginFlags* flags, bool create) {
  ferry::client::LoginOptions& options = flags->options;
  options.home = home;
  if (options.device_name.empty()) options.device_name = HostName();
  absl::StatusOr<std::string> passphrase = ReadPassphrase(flags->passphrase_file, create);
  if (!passphrase.ok()) return Fail(passphrase.status());
  options.passphrase = *std::move(passphrase);
  auto device = create ? Device::CreateAccount(options) : Device::Login(options);
  if (!device.ok()) return Fail(device.status());
  std::printf("server %s certificate %s (pinned)\n", options.server.c_str(),
              (*device)->client().fingerprint().c_str());
  std::printf("%s %s: device %s \"%s\", state in %s\n",
              create ? "created account" : "logged in to", options.user.c_str(),
              (*device)->state().device_id.c_str(), options.device_name.c_str(),
              home.c_str());
  return 0;
}

// A device's name, opened with this device's master key.
std::string DeviceName(const Device& device, const ferry::v1::Device& d) {
  absl::StatusOr<std::string> name =
      ferry::seal::OpenDeviceName(device.state().master_key, d.name());
  return name.ok() ? *name : "(name unreadable)";
}

// Accepts a device id, a unique prefix of one, or a unique device name.
absl::StatusOr<std::string> ResolveDevice(Device& device, const std::string& which) {
  FERRY_ASSIGN_OR_RETURN(std::vector<ferry::v1::Device> all,
                         device.client().ListDevices());
  std::vector<std::string> matches;
  for (const auto& d : all) {
    if (d.device_id() == which) return d.device_id();
    if (DeviceName(device, d) == which || d.device_id().rfind(which, 0) == 0)
      matches.push_back(d.device_id());
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty()) return absl::NotFoundError(StrCat("no device '", which, "'"));
  return absl::InvalidArgumentError(
      StrCat("'", which, "' names several devices: use its id"));
}

int RunDevices(const std::string& home) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto list = (*device)->client().ListDevices();
  if (!list.ok()) return Fail(list.status());
  for (const auto& d : *list) {
    std::printf("%s  %-20s  created %s  seen %s%s%s\n", d.device_id().c_str(),
                DeviceName(**device, d).c_str(), FormatMs(d.created_ms()).c_str(),
                FormatMs(d.last_seen_ms()).c_str(), d.revoked() ? "  revoked" : "",
                d.current() ? "  (this device)" : "");
  }
  return 0;
}

int RunRevoke(const std::string& home, const std::string& which) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  absl::StatusOr<std::string> id = ResolveDevice(**device, which);
  if (!id.ok()) return Fail(id.status());
  absl::Status status = (*device)->client().RevokeDevice(*id);
  if (!status.ok()) return Fail(status);
  std::printf("revoked device %s\n", id->c_str());
  return 0;
}

int RunRename(const std::string& home, const std::string& which,
              const std::string& name) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  absl::StatusOr<std::string> id = ResolveDevice(**device, which);
  if (!id.ok()) return Fail(id.status());
  absl::StatusOr<std::string> sealed =
      ferry::seal::SealDeviceName((*device)->state().master_key, name);
  if (!sealed.ok()) return Fail(sealed.status());
  absl::Status status = (*device)->client().RenameDevice(*id, *sealed);
  if (!status.ok()) return Fail(status);
  std::printf("renamed device %s to \"%s\"\n", id->c_str(), name.c_str());
  return 0;
}

int RunCollectionCreate(const std::string& home, const std::string& name,
                        const std::string& kind) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto info = (*device)->CreateCollection(name, kind);
  if (!info.ok()) return Fail(info.status());
  std::printf("created collection %s (%s) %s\n", name.c_str(), kind.c_str(),
              info->collection_id.c_str());
  return 0;
}

int RunCollections(const std::string& home) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto list = (*device)->ListCollections();
  if (!list.ok()) return Fail(list.status());
  for (const auto& c : *list) {
    auto head = (*device)->client().Head(c.collection_id);
    std::printf("%s  %-20s  %-10s  head %llu\n", c.collection_id.c_str(), c.name.c_str(),
                c.kind.c_str(), static_cast<unsigned long long>(head.ok() ? *head : 0));
  }
  return 0;
}

int RunPut(const std::string& home, const std::string& collection,
           const std::string& item, const std::vector<std::string>& fields) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto info = (*device)->FindCollection(collection);
  if (!info.ok()) return Fail(info.status());
  ferry::v1::Op op;
  ferry::v1::Item* out = op.mutable_put()->mutable_item();
  out->set_id(item);
  for (const std::string& field : fields) {
    size_t eq = field.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(absl::InvalidArgumentError(StrCat("'", field, "' is not NAME=VALUE")));
    }
    ferry::v1::Field* f = out->add_fields();
    f->set_name(field.substr(0, eq));
    f->set_bytes(field.substr(eq + 1));
  }
  auto seq = (*device)->AppendOps(*info, {op});
  if (!seq.ok()) return Fail(seq.status());
  std::printf("appended transaction at seq %llu of %s\n",
              static_cast<unsigned long long>(*seq), collection.c_str());
  return 0;
}

void PrintOp(const ferry::v1::Op& op) {
  if (op.has_put()) {
    std::printf("  put %s", op.put().item().id().c_str());
    for (const auto& f : op.put().item().fields()) {
      if (f.has_content()) {
        std::printf(" %s=<%llu bytes in %d chunks>", f.name().c_str(),
                    static_cast<unsigned long long>(f.content().size()),
                    f.content().chunks_size());
      } else {
        std::printf(" %s=%s", f.name().c_str(), f.bytes().c_str());
      }
    }
    std::printf("\n");
  } else if (op.has_patch()) {
    std::printf("  patch %s (%d set, %d unset, %d spliced)\n", op.patch().id().c_str(),
                op.patch().set_size(), op.patch().unset_size(), op.patch().splice_size());
  } else if (op.has_delete_()) {
    std::printf("  delete %s\n", op.delete_().id().c_str());
  } else if (op.has_move()) {
    std::printf("  move %s -> %s\n", op.move().from_id().c_str(),
                op.move().to_id().c_str());
  }
}

int RunLog(const std::string& home, const std::string& collection, bool verbose) {
  auto device = Device::Open(home);
  if (!device.ok()) return Fail(device.status());
  auto info = (*device)->FindCollection(collection);
  if (!info.ok()) return Fail(info.status());
  auto log = (*device)->ReadLog(*info, 0);
  if (!log.ok()) return Fail(log.status());
  for (const auto& [seq, tx] : *log) {
    int counts[5] = {};
    for (const auto& op : tx.ops()) counts[op.op_case()] += 1;
    std::printf("seq %llu  %s  device %s  %d put, %d patch, %d delete, %d move\n",
                static_cast<unsigned long long>(seq),
                FormatMs(static_cast<int64_t>(tx.hlc_time() >> 16)).c_str(),
                tx.device_id().c_str(), counts[ferry::v1::Op::kPut],
                counts[ferry::v1::Op::kPatch], counts[ferry::v1::Op::kDelete],
                counts[ferry::v1::Op::kMove]);
    if (verbose) {
      for (const auto& op : tx.ops()) PrintOp(op);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ferry keeps your files, contacts and calendars the same on all your devices,\n"
      "through a ferryd server that stores only encrypted differences.\n\n"
      "Exit codes: 0 done; 1 error (the message says what); 2 bad usage;\n"
      "3 the mass-deletion guard stopped a sync; 4 synced, with new conflicts (both "
      "sides\n"
      "kept: see `ferry conflicts`).",
      "ferry"};
  app.require_subcommand(1);
  std::string home = ferry::client::DefaultHome();
  app.add_option("--home", home,
                 "this device's state folder (default: $XDG_DATA_HOME/ferry or "
                 "~/.local/share/ferry); several devices can live on one machine")
      ->capture_default_str();

  CLI::App* account = app.add_subcommand("account", "manage the account");
  account->require_subcommand(1);
  LoginFlags create_flags;
  CLI::App* create = account->add_subcommand(
      "create", "create an account on a ferryd and log this device in");
  AddLoginFlags(create, &create_flags);

  LoginFlags login_flags;
  CLI::App* login =
      app.add_subcommand("login", "log this device in to an existing account");
  AddLoginFlags(login, &login_flags);

  CLI::App* devices =
      app.add_subcommand("devices", "list the account's devices, one a line");

  std::string revoke_which;
  CLI::App* revoke =
      app.add_subcommand("revoke", "revoke a device: its token stops working");
  revoke->add_option("DEVICE", revoke_which, "device id, id prefix or name")->required();

  std::string rename_which, rename_name;
  CLI::App* rename = app.add_subcommand("rename", "rename a device");
  rename->add_option("DEVICE", rename_which, "device id, id prefix or name")->required();
  rename->add_option("NAME", rename_name, "new name")->required();

  CLI::App* collection = app.add_subcommand("collection", "manage collections");
  collection->require_subcommand(1);
  std::string collection_name, collection_kind = "files";
  CLI::App* collection_create =
      collection->add_subcommand("create", "create a collection");
  collection_create->add_option("NAME", collection_name, "collection name")->required();
  collection_create->add_option("--kind", collection_kind, "files, contacts or calendar")
      ->check(CLI::IsMember({"files", "contacts", "calendar"}))
      ->capture_default_str();
  CLI::App* collections =
      app.add_subcommand("collections", "list the account's collections");

  std::string put_collection, put_item;
  std::vector<std::string> put_fields;
  CLI::App* put = app.add_subcommand(
      "put", "append a transaction that puts one item (low-level, for testing)");
  put->add_option("COLLECTION", put_collection, "collection name")->required();
  put->add_option("ITEM", put_item, "item id")->required();
  put->add_option("FIELDS", put_fields, "NAME=VALUE fields");

  std::string log_collection;
  bool log_verbose = false;
  CLI::App* log =
      app.add_subcommand("log", "print a collection's transactions, decrypted");
  log->add_option("COLLECTION", log_collection, "collection name")->required();
  log->add_flag("-v,--verbose", log_verbose, "print every op too");

  std::string add_name, add_kind = "files", add_path;
  CLI::App* add = app.add_subcommand(
      "add",
      "sync a collection with local data: creates NAME, or joins it when it exists");
  add->add_option("NAME", add_name, "collection name")->required();
  add->add_option("--kind", add_kind, "kind of data")
      ->check(CLI::IsMember({"files", "contacts", "calendar"}))
      ->capture_default_str();
  add->add_option("--path", add_path, "the folder (created when missing)")->required();

  std::string sync_name;
  bool allow_mass_delete = false;
  CLI::App* sync = app.add_subcommand("sync", "sync every added collection, or NAME");
  sync->add_option("NAME", sync_name, "only this collection");
  sync->add_flag("--allow-mass-delete", allow_mass_delete,
                 "push deletions even when the data is gone, emptied, or more than half "
                 "of it would be deleted");

  std::string watch_name;
  int watch_interval_s = 60;
  CLI::App* watch = app.add_subcommand(
      "watch",
      "keep syncing every added collection, or NAME, until stopped: at once, when "
      "another device pushes, a moment after its folder changes, and every --interval");
  watch->add_option("NAME", watch_name, "only this collection");
  watch
      ->add_option("--interval", watch_interval_s,
                   "seconds between rescans of the local data")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  bool watch_no_folders = false;
  watch->add_flag("--no-folder-watch", watch_no_folders,
                  "do not watch the folders for changes (inotify); only --interval finds "
                  "local changes");

  bool status_json = false;
  CLI::App* status = app.add_subcommand("status", "what this device syncs, and how far");
  status->add_flag("--json", status_json, "print JSON");

  bool conflicts_all = false;
  CLI::App* conflicts = app.add_subcommand(
      "conflicts",
      "the conflict log: what both sides changed, and where the other is kept");
  conflicts->add_flag("--all", conflicts_all, "resolved ones too");

  std::string resolve_which, resolve_take;
  CLI::App* resolve =
      app.add_subcommand("resolve", "settle a field conflict of a contact or event");
  resolve->add_option("ID", resolve_which, "COLLECTION:NUMBER from `ferry conflicts`")
      ->required();
  resolve
      ->add_option("--take", resolve_take,
                   "other: switch to the value that was not kept; kept: keep it; "
                   "anything else: the field's new value")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);  // prints the message; 0 for --help
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (*create) return RunLogin(home, &create_flags, true);
  if (*login) return RunLogin(home, &login_flags, false);
  if (*devices) return RunDevices(home);
  if (*revoke) return RunRevoke(home, revoke_which);
  if (*rename) return RunRename(home, rename_which, rename_name);
  if (*collection_create)
    return RunCollectionCreate(home, collection_name, collection_kind);
  if (*collections) return RunCollections(home);
  if (*put) return RunPut(home, put_collection, put_item, put_fields);
  if (*log) return RunLog(home, log_collection, log_verbose);
  if (*add) return RunAdd(home, add_name, add_kind, add_path);
  if (*sync) return RunSync(home, sync_name, allow_mass_delete);
  if (*watch) return RunWatch(home, watch_name, watch_interval_s, !watch_no_folders);
  if (*status) return RunStatus(home, status_json);
  if (*conflicts) return RunConflicts(home, conflicts_all);
  if (*resolve) return RunResolve(home, resolve_which, resolve_take);
  return kExitUsage;
}
