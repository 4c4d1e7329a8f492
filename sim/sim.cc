#include "sim/sim.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "include/ferry/engine.h"
#include "src/client/device.h"
#include "src/connectors/files/files_connector.h"
#include "src/connectors/files/mem_file_system.h"
#include "src/connectors/pim/record.h"
#include "src/connectors/pim/records_connector.h"
#include "src/core/clock.h"
#include "src/core/strings.h"
#include "src/engine/chunk_cache.h"
#include "src/engine/shadow_store.h"
#include "src/seal/seal.h"
#include "src/server/server.h"

namespace ferry::sim {
namespace {

namespace fs = std::filesystem;
using Rng = std::mt19937_64;

// 2026-01-01T00:00:00Z: where every run's clock starts.
constexpr int64_t kStartMs = 1767225600000;
constexpr int64_t kDayMs = 24 * 3600 * 1000;
constexpr uint32_t kLeaseTtlMs = 60000;
// Rounds of the heal-and-drain phase before a run is declared not converging.
constexpr int kDrainRoundsMax = 12;
constexpr char kCrash[] = "simulated crash";
// The deadline of every call a simulated device makes (wall time; see its use).
constexpr int kSimCallTimeoutMs = 300 * 1000;

class SimClock final : public Clock {
 public:
  int64_t NowMs() override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_{kStartMs};
};

// The engine's randomness (tx ids), from the seed.
class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : rng_(seed ^ 0x9e3779b97f4a7c15ull) {}
  std::string Bytes(size_t n) {
    std::lock_guard lock(mu_);
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng_());
    return out;
  }

 private:
  std::mutex mu_;
  Rng rng_;
};

class DeviceEnv final : public Env {
 public:
  DeviceEnv(SimClock* clock, SeededRandom* random) : clock_(clock), random_(random) {}
  int64_t NowMs() override { return clock_->NowMs() + skew_ms; }
  std::string RandomBytes(size_t n) override { return random_->Bytes(n); }
  absl::StatusOr<std::unique_ptr<files::RootDir>> OpenRoot(
      const std::string& path) override {
    if (mem != nullptr) return mem->OpenRoot(path);
    return Env::OpenRoot(path);
  }
  int64_t skew_ms = 0;
  files::MemFileSystem* mem = nullptr;  // the device's folder is in it, if set

 private:
  SimClock* clock_;
  SeededRandom* random_;
};

// One fault for one sync, drawn before it starts (on the simulation's thread, so a
// run stays a function of its seed even though the engine calls from several threads).
struct FaultPlan {
  enum Kind {
    kNone,
    kFailBefore,           // call `call` number `nth` fails without reaching the server
    kFailAfter,            // ... fails after the server did it
    kCrashAtCall,          // the device dies at that call (before it)
    kCrashBeforeApply,     // the device dies at apply `nth`, before doing it
    kCrashAfterApply,      // ... right after doing it
    kUserEditBeforeApply,  // the user changes the target of apply `nth` first
    kLeaseStolen,          // before the first Append, the lease expires and another
                           // device takes it
    kCrashBetweenFlushes,  // power cut in apply `nth`, after its first flush: written
                           // temporary files durable, their renames lost (a folder in
                           // memory only; on disk as kCrashAfterApply)
  } kind = kNone;
  std::string call;
  int nth = 1;
};

const char* KindName(FaultPlan::Kind kind) {
  switch (kind) {
    case FaultPlan::kNone:
      return "none";
    case FaultPlan::kFailBefore:
      return "fail-before";
    case FaultPlan::kFailAfter:
      return "fail-after";
    case FaultPlan::kCrashAtCall:
      return "crash-at-call";
    case FaultPlan::kCrashBeforeApply:
      return "crash-before-apply";
    case FaultPlan::kCrashAfterApply:
      return "crash-after-apply";
    case FaultPlan::kUserEditBeforeApply:
      return "user-edit-before-apply";
    case FaultPlan::kLeaseStolen:
      return "lease-stolen";
    case FaultPlan::kCrashBetweenFlushes:
      return "crash-between-flushes";
  }
  return "?";
}

// The real client, with the plan's fault injected at its call.
class FaultyClient final : public net::Client {
 public:
  // `steal` makes another device take the lease; `give_back` has it release the lease
  // again (that device's sync is over).
  FaultyClient(net::Client* real, const FaultPlan& plan, std::function<void()> steal,
               std::function<void()> give_back)
      : real_(real),
        plan_(plan),
        steal_(std::move(steal)),
        give_back_(std::move(give_back)) {}
  bool fired() const { return fired_; }
  bool crashed() const { return crashed_; }

  const std::string& server_cert_pem() const override { return real_->server_cert_pem(); }
  const std::string& fingerprint() const override { return real_->fingerprint(); }
  void set_token(std::string token) override { real_->set_token(std::move(token)); }
  absl::StatusOr<v1::KdfParams> GetLoginParams(const std::string& user) override {
    return Call("GetLoginParams", [&] { return real_->GetLoginParams(user); });
  }
  absl::StatusOr<v1::LoginResponse> CreateAccount(
      const v1::CreateAccountRequest& request) override {
    return Call("CreateAccount", [&] { return real_->CreateAccount(request); });
  }
  absl::StatusOr<v1::LoginResponse> Login(const v1::LoginRequest& request) override {
    return Call("Login", [&] { return real_->Login(request); });
  }
  absl::StatusOr<std::vector<v1::Device>> ListDevices() override {
    return Call("ListDevices", [&] { return real_->ListDevices(); });
  }
  absl::Status RenameDevice(const std::string& id, const std::string& name) override {
    return Call("RenameDevice", [&] { return real_->RenameDevice(id, name); });
  }
  absl::Status RevokeDevice(const std::string& id) override {
    return Call("RevokeDevice", [&] { return real_->RevokeDevice(id); });
  }
  absl::StatusOr<v1::Collection> CreateCollection(const v1::Collection& c) override {
    return Call("CreateCollection", [&] { return real_->CreateCollection(c); });
  }
  absl::StatusOr<std::vector<v1::Collection>> ListCollections() override {
    return Call("ListCollections", [&] { return real_->ListCollections(); });
  }
  absl::StatusOr<v1::Lease> AcquireLease(const std::string& collection_id,
                                         uint32_t ttl_ms) override {
    return Call("AcquireLease",
                [&] { return real_->AcquireLease(collection_id, ttl_ms); });
  }
  absl::StatusOr<v1::Lease> RenewLease(const std::string& collection_id, uint64_t token,
                                       uint32_t ttl_ms) override {
    return Call("RenewLease",
                [&] { return real_->RenewLease(collection_id, token, ttl_ms); });
  }
  absl::Status ReleaseLease(const std::string& collection_id, uint64_t token) override {
    return Call("ReleaseLease",
                [&] { return real_->ReleaseLease(collection_id, token); });
  }
  absl::StatusOr<v1::AppendResponse> Append(const std::string& collection_id,
                                            const std::string& envelope,
                                            uint64_t token) override {
    bool steal = plan_.kind == FaultPlan::kLeaseStolen && !fired_;
    if (steal) {
      fired_ = true;
      steal_();
    }
    auto result =
        Call("Append", [&] { return real_->Append(collection_id, envelope, token); });
    if (steal) give_back_();
    return result;
  }
  absl::StatusOr<v1::PullResponse> Pull(const std::string& collection_id, uint64_t after,
                                        uint32_t limit) override {
    return Call("Pull", [&] { return real_->Pull(collection_id, after, limit); });
  }
  absl::StatusOr<uint64_t> Head(const std::string& collection_id) override {
    return Call("Head", [&] { return real_->Head(collection_id); });
  }
  absl::StatusOr<std::vector<bool>> HasChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) override {
    return Call("HasChunks", [&] { return real_->HasChunks(collection_id, ids); });
  }
  absl::StatusOr<v1::PutChunksResponse> PutChunks(
      const std::string& collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) override {
    return Call("PutChunks", [&] { return real_->PutChunks(collection_id, chunks); });
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) override {
    return Call("GetChunks", [&] { return real_->GetChunks(collection_id, ids); });
  }
  std::unique_ptr<net::WatchStream> Watch(const std::vector<std::string>& ids) override {
    return real_->Watch(ids);
  }

 private:
  template <typename F>
  auto Call(const char* name, F&& call) -> decltype(call()) {
    bool mine = false;
    {
      std::lock_guard lock(mu_);
      if (crashed_) return absl::CancelledError(kCrash);
      int n = ++calls_[name];
      mine =
          !fired_ && plan_.call == name && n == plan_.nth &&
          (plan_.kind == FaultPlan::kFailBefore || plan_.kind == FaultPlan::kFailAfter ||
           plan_.kind == FaultPlan::kCrashAtCall);
      if (mine) fired_ = true;
      if (mine && plan_.kind == FaultPlan::kCrashAtCall) {
        crashed_ = true;
        return absl::CancelledError(kCrash);
      }
      if (mine && plan_.kind == FaultPlan::kFailBefore) {
        return absl::UnavailableError("simulated network failure before the call");
      }
    }
    auto result = call();
    if (mine) return absl::UnavailableError("simulated network failure after the call");
    return result;
  }

  net::Client* real_;
  FaultPlan plan_;
  std::function<void()> steal_;
  std::function<void()> give_back_;
  std::mutex mu_;
  std::map<std::string, int> calls_;
  bool fired_ = false;
  bool crashed_ = false;
};

// The real connector, with the plan's apply fault.
class FaultyConnector final : public Connector {
 public:
  // `mem`: the file system the folder is in, if in memory (else nullptr).
  FaultyConnector(Connector* real, const FaultPlan& plan,
                  std::function<void(const std::string&)> user_edit,
                  files::MemFileSystem* mem)
      : real_(real), plan_(plan), user_edit_(std::move(user_edit)), mem_(mem) {}
  bool fired() const { return fired_; }
  bool crashed() const { return crashed_; }

  std::string_view Name() const override { return real_->Name(); }
  bool DataPresent() override { return real_->DataPresent(); }
  bool SameStamp(const std::string& earlier, const std::string& now) const override {
    return real_->SameStamp(earlier, now);
  }
  void Prefetch() override {
    if (!crashed_) real_->Prefetch();
  }
  absl::StatusOr<ScanResult> Scan(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) override {
    if (crashed_) return absl::CancelledError(kCrash);
    return real_->Scan(synced, stamps);
  }
  absl::StatusOr<ScanResult> ScanUnchanged(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) override {
    if (crashed_) return absl::CancelledError(kCrash);
    return real_->ScanUnchanged(synced, stamps);
  }
  absl::Status ReadContent(
      const v1::Item& item, const std::string& field, const ContentPart& part,
      const std::function<absl::Status(const v1::ChunkRef&, std::string_view)>& sink)
      override {
    return real_->ReadContent(item, field, part, sink);
  }
  absl::StatusOr<std::string> ReadRange(const std::string& id, const std::string& field,
                                        uint64_t offset, uint32_t size) override {
    return real_->ReadRange(id, field, offset, size);
  }
  absl::StatusOr<std::string> Apply(const std::string& id, const std::string& expected,
                                    const v1::Item* after, ChunkSource* chunks) override {
    return std::move(ApplyBatch({{id, expected, after}}, chunks)[0]);
  }
  std::vector<absl::StatusOr<std::string>> ApplyBatch(
      const std::vector<ApplyRequest>& requests, ChunkSource* chunks) override {
    std::vector<absl::StatusOr<std::string>> crashed(requests.size(),
                                                     absl::CancelledError(kCrash));
    if (crashed_) return crashed;
    bool mine = !fired_ && ++applies_ == plan_.nth;
    if (mine && plan_.kind == FaultPlan::kCrashBeforeApply) {
      fired_ = crashed_ = true;
      return crashed;
    }
    if (mine && plan_.kind == FaultPlan::kUserEditBeforeApply && !requests.empty()) {
      fired_ = true;
      user_edit_(requests.front().id);
    }
    if (mine && plan_.kind == FaultPlan::kCrashBetweenFlushes && mem_ != nullptr) {
      // Every flush after the first fails, and the power cut (Crash, by the caller)
      // takes what they would have made durable.
      mem_->InjectFault({.op = files::FsOp::kSync,
                         .path_prefix = "",
                         .status = absl::CancelledError(kCrash),
                         .skip = 1,
                         .count = -1});
    }
    auto results = real_->ApplyBatch(requests, chunks);
    if (mine && (plan_.kind == FaultPlan::kCrashAfterApply ||
                 plan_.kind == FaultPlan::kCrashBetweenFlushes)) {
      fired_ = crashed_ = true;
      return crashed;
    }
    return results;
  }
  absl::StatusOr<std::string> Move(const std::string& from, const std::string& stamp,
                                   const std::string& to) override {
    if (crashed_) return absl::CancelledError(kCrash);
    bool mine = !fired_ && ++applies_ == plan_.nth;
    if (mine && plan_.kind == FaultPlan::kCrashBeforeApply) {
      fired_ = crashed_ = true;
      return absl::CancelledError(kCrash);
    }
    auto result = real_->Move(from, stamp, to);
    if (mine && (plan_.kind == FaultPlan::kCrashAfterApply ||
                 plan_.kind == FaultPlan::kCrashBetweenFlushes)) {
      fired_ = crashed_ = true;
      return absl::CancelledError(kCrash);
    }
    return result;
  }
  std::string ConflictCopyId(const std::string& id, const std::string& device,
                             int64_t time_ms) override {
    return real_->ConflictCopyId(id, device, time_ms);
  }
  int64_t EditTimeMs(const v1::Item& item) override { return real_->EditTimeMs(item); }
  bool MergesFields() const override { return real_->MergesFields(); }
  std::optional<v1::Field> MergeFieldValues(std::string_view name, const v1::Field& ours,
                                            const v1::Field& theirs) override {
    return real_->MergeFieldValues(name, ours, theirs);
  }

 private:
  Connector* real_;
  FaultPlan plan_;
  std::function<void(const std::string&)> user_edit_;
  files::MemFileSystem* mem_;
  int applies_ = 0;
  bool fired_ = false;
  bool crashed_ = false;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

void WriteAll(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A device's folder as its user and the checks see it: a directory on disk, or "/root"
// in the device's own MemFileSystem. What the user does is durable at once (an
// editor's fsync), so that a power cut takes only what ferry had not made durable.
// Paths are relative to the root.
class Folder {
 public:
  explicit Folder(fs::path disk_root) : disk_(std::move(disk_root)) {
    fs::create_directories(disk_);
  }
  // The folder `mem_root` ("/root") of `mem`, which may hold other folders.
  Folder(std::shared_ptr<files::MemFileSystem> mem, std::string mem_root)
      : mem_(std::move(mem)), mem_root_(std::move(mem_root)) {
    (void)mem_->Mkdir(mem_root_);
    (void)mem_->WriteFile("/outside/sentinel", "keep me");
    mem_->SyncAll();
  }

  std::string Root() const { return mem_ ? mem_root_ : disk_.string(); }
  files::MemFileSystem* mem() { return mem_.get(); }

  struct Entry {
    files::FileStat stat;
    std::string data;  // a file's
  };
  // Every entry below the root by relative path, ferry's temporary files left out
  // unless `with_temps`.
  std::map<std::string, Entry> Walk(bool with_temps = false) const {
    std::map<std::string, Entry> out;
    if (mem_) {
      WalkMem("", with_temps, &out);
      return out;
    }
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(disk_, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      std::string rel = fs::relative(it->path(), disk_).string();
      if (!with_temps && rel.find(".ferry-tmp") != std::string::npos) continue;
      struct stat st;
      if (::lstat(it->path().c_str(), &st) != 0) continue;
      Entry e;
      e.stat.type = S_ISDIR(st.st_mode)   ? files::FileStat::kDir
                    : S_ISREG(st.st_mode) ? files::FileStat::kFile
                    : S_ISLNK(st.st_mode) ? files::FileStat::kSymlink
                                          : files::FileStat::kOther;
      e.stat.mode = st.st_mode & 07777;
      e.stat.size = static_cast<uint64_t>(st.st_size);
      e.stat.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
      if (e.stat.type == files::FileStat::kFile) e.data = Read(rel);
      out[rel] = std::move(e);
    }
    return out;
  }
  std::optional<files::FileStat> Stat(const std::string& rel) const {
    if (mem_) {
      auto stat = mem_->Stat(MemPath(rel));
      return stat.ok() ? *stat : std::nullopt;
    }
    struct stat st;
    if (::lstat((disk_ / rel).c_str(), &st) != 0) return std::nullopt;
    files::FileStat out;
    out.type = S_ISDIR(st.st_mode)   ? files::FileStat::kDir
               : S_ISREG(st.st_mode) ? files::FileStat::kFile
                                     : files::FileStat::kOther;
    return out;
  }
  bool Is(const std::string& rel, files::FileStat::Type type) const {
    std::optional<files::FileStat> stat = Stat(rel);
    return stat.has_value() && stat->type == type;
  }
  bool Exists(const std::string& rel) const { return Stat(rel).has_value(); }
  std::string Read(const std::string& rel) const {
    if (mem_) {
      auto data = mem_->ReadFile(MemPath(rel));
      return data.ok() ? *data : "";
    }
    return ReadAll(disk_ / rel);
  }
  // Creates or overwrites `rel` in place (parents created) with mtime `mtime_ms`.
  void Write(const std::string& rel, const std::string& data, int64_t mtime_ms) {
    if (mem_) {
      (void)mem_->WriteFile(MemPath(rel), data, 0644, mtime_ms * 1000000);
      mem_->SyncPath(MemPath(rel));
      return;
    }
    fs::path path = disk_ / rel;
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
    struct timespec times[2] = {{mtime_ms / 1000, (mtime_ms % 1000) * 1000000},
                                {mtime_ms / 1000, (mtime_ms % 1000) * 1000000}};
    ::utimensat(AT_FDCWD, path.c_str(), times, 0);
  }
  void RemoveAll(const std::string& rel) {
    if (mem_) {
      (void)mem_->RemoveAll(MemPath(rel));
      mem_->SyncPath(MemPath(rel));
      return;
    }
    std::error_code ec;
    fs::remove_all(disk_ / rel, ec);
  }
  // rename(2) of `from` to `to`, the parents of `to` created.
  void Rename(const std::string& from, const std::string& to) {
    if (mem_) {
      std::string parent = MemPath(fs::path(to).parent_path().string());
      (void)mem_->Mkdir(parent);
      (void)mem_->Rename(MemPath(from), MemPath(to));
      mem_->SyncPath(MemPath(from));
      mem_->SyncPath(MemPath(to));
      return;
    }
    std::error_code ec;
    fs::create_directories((disk_ / to).parent_path(), ec);
    fs::rename(disk_ / from, disk_ / to, ec);
  }
  void Mkdirs(const std::string& rel) {
    if (mem_) {
      (void)mem_->Mkdir(MemPath(rel));
      mem_->SyncPath(MemPath(rel));
      return;
    }
    std::error_code ec;
    fs::create_directories(disk_ / rel, ec);
  }
  // A power cut, in memory; nothing on disk (a crash there is a process dying, which
  // loses nothing the file system already has).
  void Crash() {
    if (mem_) mem_->Crash();
  }
  // The first temporary file of ferry's in the folder ("" if none).
  std::string FindTemp() const {
    for (const auto& [rel, entry] : Walk(/*with_temps=*/true)) {
      if (files::RootDir::IsTempName(fs::path(rel).filename().string())) return rel;
    }
    return "";
  }
  // Nothing was written beside the folders (`tops`, the top-level names there).
  bool OutsideUntouched(const std::vector<std::string>& tops) const {
    if (!mem_) return true;
    auto top = mem_->List("/");
    auto outside = mem_->List("/outside");
    auto sentinel = mem_->ReadFile("/outside/sentinel");
    return top.ok() && *top == tops && outside.ok() && outside->size() == 1 &&
           sentinel.ok() && *sentinel == "keep me";
  }

 private:
  std::string MemPath(const std::string& rel) const {
    return rel.empty() || rel == "." ? mem_root_ : StrCat(mem_root_, "/", rel);
  }
  void WalkMem(const std::string& dir, bool with_temps,
               std::map<std::string, Entry>* out) const {
    auto names = mem_->List(MemPath(dir));
    if (!names.ok()) return;
    for (const std::string& name : *names) {
      if (!with_temps && name.find(".ferry-tmp") != std::string::npos) continue;
      std::string rel = dir.empty() ? name : StrCat(dir, "/", name);
      auto stat = mem_->Stat(MemPath(rel));
      if (!stat.ok() || !stat->has_value()) continue;
      Entry e;
      e.stat = **stat;
      if (e.stat.type == files::FileStat::kDir) e.stat.size = 0;
      if (e.stat.type == files::FileStat::kFile) e.data = Read(rel);
      const bool is_dir = e.stat.type == files::FileStat::kDir;
      (*out)[rel] = std::move(e);
      if (is_dir) WalkMem(rel, with_temps, out);
    }
  }

  fs::path disk_;
  std::shared_ptr<files::MemFileSystem> mem_;
  std::string mem_root_;
};

struct Device {
  int index = 0;
  fs::path home;
  std::unique_ptr<Folder> folder;
  std::unique_ptr<Folder> contacts;  // when SimOptions::contacts
  std::unique_ptr<client::Device> device;
  client::CollectionInfo info;
  client::CollectionInfo contacts_info;
  std::unique_ptr<DeviceEnv> env;
  int offline_until = -1;  // step
};

class Run {
 public:
  Run(const SimOptions& options)
      : options_(options), rng_(options.seed), random_(options.seed) {}

  SimResult Go() {
    // In memory where there is a tmpfs: the run's fsyncs then cost nothing, and what
    // the simulation checks does not depend on them (a crash here is a process dying,
    // which loses nothing a file system already has).
    std::error_code ec;
    std::string base = fs::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string pattern_text = base + "/ferry-sim-XXXXXX";
    std::vector<char> pattern(pattern_text.begin(), pattern_text.end());
    pattern.push_back('\0');
    if (::mkdtemp(pattern.data()) == nullptr) return Fail("cannot make a work folder");
    work_ = pattern.data();
    SimResult result = Body();
    std::error_code ignored;
    if (result.ok)
      fs::remove_all(work_, ignored);
    else
      result.failure += StrCat(" (work folder kept: ", work_.string(), ")");
    return result;
  }

 private:
  SimResult Fail(std::string why) {
    SimResult r = result_;
    r.ok = false;
    r.failure = StrCat("seed ", options_.seed, ": ", why);
    return r;
  }

  void Trace(const std::string& line) {
    trace_hash_ = Fnv1a64(line + "\n", trace_hash_);
    if (options_.verbose) {
      std::printf("  %s\n", line.c_str());
      std::fflush(stdout);
    }
  }

  // A path with every device id replaced by the device's number, so that traces of
  // two runs of one seed compare equal although the server draws new ids.
  std::string Canonical(std::string path) const {
    for (const auto& d : devices_) {
      std::string id8 = d.device->state().device_id.substr(0, 8);
      for (size_t at; (at = path.find(id8)) != std::string::npos;) {
        path.replace(at, id8.size(), StrCat("dev", d.index));
      }
    }
    return path;
  }

  uint64_t Pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // Whether device `i`'s folder is in memory. Not drawn from rng_, so that a seed's
  // steps are the same whichever file system its devices use.
  bool InMemory(int i) const {
    switch (options_.fs) {
      case SimFs::kDisk:
        return false;
      case SimFs::kMem:
        return true;
      case SimFs::kMixed:
        break;
    }
    return (Fnv1a64(StrCat(options_.seed, ":", i)) & 1) != 0;
  }

  // Files or directories of a device's folder: (canonical name, relative path), in
  // canonical order; ferry's own temporary files left out.
  std::vector<std::pair<std::string, std::string>> List(const Device& d, bool dirs) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [rel, entry] : d.folder->Walk()) {
      bool is_dir = entry.stat.type == files::FileStat::kDir;
      if (is_dir != dirs || (!dirs && entry.stat.type != files::FileStat::kFile))
        continue;
      out.emplace_back(Canonical(rel), rel);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string NewContent(size_t size) {
    std::string marker = StrCat("<<", Hex64(rng_()), Hex64(rng_()), ">>");
    markers_.push_back(marker);
    std::string out;
    out.reserve(size + marker.size());
    bool text = Pick(2) == 0;
    for (size_t i = 0; i < size; ++i) {
      uint64_t r = rng_();
      out.push_back(text ? static_cast<char>('a' + r % 26) : static_cast<char>(r));
    }
    out.insert(Pick(out.size() + 1), marker);
    return out;
  }

  size_t NewSize() {
    uint64_t r = Pick(100);
    if (r < 70) return Pick(4096);
    if (r < 95) return Pick(65536);
    return 100000 + Pick(300000);
  }

  void Live(const std::string& content) {
    live_[std::hash<std::string>()(content)] = true;
  }
  void Supersede(const std::string& content) {
    live_[std::hash<std::string>()(content)] = false;
  }

  // Writes `content` as the user of device `d` would, at the device's time.
  void UserWrite(Device& d, const std::string& rel, const std::string& content) {
    if (d.folder->Is(rel, files::FileStat::kFile)) Supersede(d.folder->Read(rel));
    d.folder->Write(rel, content, d.env->NowMs());
    Live(content);
  }

  std::string RandomPath() {
    static const char* kDirs[] = {"", "docs/", "docs/old/", "pics/", "src/"};
    static const char* kNames[] = {"a.txt", "b.txt", "notes.md",
                                   "todo",  "x.bin", "y.bin"};
    std::string name = Pick(4) == 0 ? StrCat("r", Hex64(rng_()).substr(0, 6), ".dat")
                                    : kNames[Pick(std::size(kNames))];
    if (name.size() >= 6) names_.insert(name);
    return StrCat(kDirs[Pick(std::size(kDirs))], name);
  }

  std::string UserAction(Device& d) {
    auto files = List(d, false);
    auto dirs = List(d, true);
    uint64_t r = Pick(100);
    Folder& folder = *d.folder;
    if (r < 30 || files.empty()) {
      std::string rel = RandomPath();
      if (folder.Is(rel, files::FileStat::kDir)) return "create-skipped";
      UserWrite(d, rel, NewContent(NewSize()));
      return StrCat("create ", rel);
    }
    auto& [name, path] = files[Pick(files.size())];
    if (r < 60) {
      std::string old = folder.Read(path);
      std::string piece = NewContent(Pick(3000));
      std::string edited;
      uint64_t how = Pick(3);
      if (how == 0) {
        edited = old + piece;
      } else if (how == 1) {
        size_t at = Pick(old.size() + 1);
        edited = old.substr(0, at) + piece +
                 old.substr(std::min(old.size(), at + piece.size()));
      } else {
        edited = piece + old;
      }
      UserWrite(d, path, edited);
      return StrCat("edit ", name);
    }
    if (r < 72) {
      Supersede(folder.Read(path));
      folder.RemoveAll(path);
      return StrCat("delete ", name);
    }
    if (r < 84) {
      std::string to = RandomPath();
      if (folder.Exists(to)) return "rename-skipped";
      folder.Rename(path, to);
      return StrCat("rename ", name, " ", to);
    }
    if (r < 90 && !dirs.empty()) {
      auto& [dname, dpath] = dirs[Pick(dirs.size())];
      for (auto& [fname, fpath] : files) {
        if (fname.starts_with(dname + "/")) Supersede(folder.Read(fpath));
      }
      folder.RemoveAll(dpath);
      return StrCat("delete-dir ", dname);
    }
    if (r < 95 && !dirs.empty()) {
      auto& [dname, dpath] = dirs[Pick(dirs.size())];
      std::string to = StrCat("moved", Pick(3));
      if (folder.Exists(to)) return "move-dir-skipped";
      folder.Rename(dpath, to);
      return StrCat("move-dir ", dname, " ", to);
    }
    std::string dir = StrCat("empty", Pick(3));
    folder.Mkdirs(dir);
    return StrCat("mkdir ", dir);
  }

  // A contact's file: UID, a name, a note holding a marker, and phone numbers.
  static std::string Card(const std::string& uid, const std::string& note) {
    return StrCat("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:", uid, "\r\nFN:Person ", uid,
                  "\r\nNOTE:", note, "\r\nEND:VCARD\r\n");
  }
  std::string NewMarker() {
    std::string marker = StrCat("<<", Hex64(rng_()), Hex64(rng_()), ">>");
    markers_.push_back(marker);
    return marker;
  }

  // The user of `d` changes contact `id` (a UID; its file is <uid>.vcf): a new note,
  // or one more phone number. Notes are live until replaced where they were seen.
  void EditContact(Device& d, const std::string& id) {
    std::string file = id + ".vcf";
    if (!d.contacts->Is(file, files::FileStat::kFile)) return;
    std::string text = d.contacts->Read(file);
    size_t at = text.find("\r\nNOTE:");
    std::string marker = NewMarker();
    if (Pick(3) != 0 && at != std::string::npos) {
      size_t end = text.find("\r\n", at + 2);
      notes_live_[text.substr(at + 7, end - at - 7)] = false;  // replaced knowingly
      text.replace(at + 7, end - at - 7, marker);
      notes_live_[marker] = true;
    } else {
      size_t end = text.rfind("END:VCARD");
      if (end == std::string::npos) return;
      text.insert(end, StrCat("TEL;TYPE=cell:+1 555 ", rng_() % 10000, "\r\n"));
    }
    d.contacts->Write(file, text, d.env->NowMs());
  }

  std::string ContactAction(Device& d) {
    std::vector<std::string> uids;
    for (const auto& [rel, e] : d.contacts->Walk()) {
      if (e.stat.type == files::FileStat::kFile && rel.ends_with(".vcf")) {
        uids.push_back(rel.substr(0, rel.size() - 4));
      }
    }
    uint64_t r = Pick(100);
    if (r < 35 || uids.empty()) {
      std::string uid = StrCat("c", Hex64(rng_()).substr(0, 6));
      if (d.contacts->Exists(uid + ".vcf")) return "contact-create-skipped";
      std::string marker = NewMarker();
      notes_live_[marker] = true;
      d.contacts->Write(uid + ".vcf", Card(uid, marker), d.env->NowMs());
      return StrCat("contact-create ", uid);
    }
    const std::string& uid = uids[Pick(uids.size())];
    if (r < 85) {
      EditContact(d, uid);
      return StrCat("contact-edit ", uid);
    }
    std::string text = d.contacts->Read(uid + ".vcf");
    size_t at = text.find("\r\nNOTE:");
    if (at != std::string::npos) {
      notes_live_[text.substr(at + 7, text.find("\r\n", at + 2) - at - 7)] = false;
    }
    d.contacts->RemoveAll(uid + ".vcf");
    return StrCat("contact-delete ", uid);
  }

  FaultPlan DrawFault() {
    FaultPlan plan;
    if (!faults_on_ || Pick(100) >= 35) return plan;
    static const char* kCalls[] = {"AcquireLease", "Pull",   "HasChunks",   "PutChunks",
                                   "GetChunks",    "Append", "ReleaseLease"};
    plan.kind = static_cast<FaultPlan::Kind>(1 + Pick(8));
    plan.call = kCalls[Pick(std::size(kCalls))];
    plan.nth = 1 + static_cast<int>(Pick(3) == 0 ? Pick(3) : 0);
    return plan;
  }

  // One sync of device `d`'s files (or, `people`, its contacts); the status code is
  // the outcome. `assume_unchanged`: a sync as `ferry watch` makes when told of a
  // remote push (SyncOptions::assume_unchanged).
  absl::Status Sync(Device& d, bool people, const FaultPlan& plan, bool allow_mass_delete,
                    SyncReport* report, bool assume_unchanged = false) {
    const std::string prefix = people ? "contacts-" : "";
    const client::CollectionInfo& info = people ? d.contacts_info : d.info;
    auto shadow = engine::ShadowStore::Open((d.home / (prefix + "shadow.db")).string());
    if (!shadow.ok()) return shadow.status();
    auto cache = engine::ChunkCache::Open((d.home / (prefix + "cache.db")).string(),
                                          16u << 20, 8u << 20);
    if (!cache.ok()) return cache.status();
    seal::ContentHasher hasher(info.key);
    std::unique_ptr<Connector> real;
    if (people) {
      pim::RecordsOptions records_options;
      records_options.root = d.contacts->Root();
      records_options.kind = pim::RecordKind::kContact;
      records_options.env = d.env.get();
      // One engine per folder, as the folder lock makes it outside the simulation
      // (src/client/collections.cc): every temporary file a scan finds is left over.
      records_options.leftover_temps.all = true;
      real = std::make_unique<pim::RecordsConnector>(records_options);
    } else {
      files::FilesOptions files_options;
      files_options.root = d.folder->Root();
      files_options.hash_threads = 2;
      files_options.case_insensitive = false;
      files_options.env = d.env.get();
      files_options.leftover_temps.all = true;
      real = std::make_unique<files::FilesConnector>(files_options, &hasher,
                                                     files::ChunkerSeed(hasher));
    }
    FaultyConnector connector(
        real.get(), plan,
        [&](const std::string& id) {
          if (people) {
            EditContact(d, id);
          } else if (d.folder->Is(id, files::FileStat::kFile)) {
            UserWrite(d, id, d.folder->Read(id) + NewContent(50));
          }
        },
        (people ? d.contacts : d.folder)->mem());
    int thief = (d.index + 1) % static_cast<int>(devices_.size());
    uint64_t thief_token = 0;
    FaultyClient client(
        &d.device->client(), plan,
        [&] {
          clock_.Advance(kLeaseTtlMs + 1000);
          auto lease = devices_[thief].device->client().AcquireLease(info.collection_id,
                                                                     kLeaseTtlMs);
          if (lease.ok()) thief_token = lease->fencing_token();
        },
        [&] {
          (void)devices_[thief].device->client().ReleaseLease(info.collection_id,
                                                              thief_token);
        });
    EngineConfig config;
    config.collection_id = info.collection_id;
    config.device_id = d.device->state().device_id;
    config.key = &info.key;
    config.client = &client;
    config.connector = &connector;
    config.shadow = shadow->get();
    config.cache = cache->get();
    config.env = d.env.get();
    SyncOptions options;
    options.allow_mass_delete = allow_mass_delete;
    options.assume_unchanged = assume_unchanged;
    options.lease_ttl_ms = kLeaseTtlMs;
    absl::StatusOr<SyncReport> got = ferry::Sync(config, options);
    bool faulted = client.fired() || connector.fired();
    if (faulted) result_.faults += 1;
    // A device that crashed restarts from what it had made durable: in memory, its
    // folder loses everything else too (a power cut).
    if (client.crashed() || connector.crashed()) d.folder->Crash();  // the whole machine
    // A lease left behind (by a crash, a failed release or a thief) runs out before
    // anyone syncs again; otherwise the next device would wait for it in real time.
    if (!got.ok() || faulted) clock_.Advance(kLeaseTtlMs + 1000);
    if (!got.ok()) return got.status();
    *report = *got;
    result_.conflicts += static_cast<int>(got->conflicts);
    return absl::OkStatus();
  }

  // path -> what a person would compare, canonical.
  std::map<std::string, std::string> Describe(const Device& d) {
    std::map<std::string, std::string> out;
    for (const auto& [rel, e] : d.folder->Walk()) {
      std::string name = Canonical(rel);
      if (e.stat.type == files::FileStat::kDir) {
        out[name] = StrCat("dir ", e.stat.mode & 0777);
      } else if (e.stat.type == files::FileStat::kFile) {
        out[name] =
            StrCat("file ", e.stat.mode & 0777, " ", e.stat.size, " ",
                   e.stat.mtime_ns / 1000000000, ".", e.stat.mtime_ns % 1000000000, " ",
                   Hex64(std::hash<std::string>()(e.data)));
      } else {
        out[name] = "other";
      }
    }
    return out;
  }

  SimResult Body() {
    seal::Init();
    fs::create_directories(work_ / "outside");
    WriteAll(work_ / "outside" / "sentinel", "keep me");
    server::ServerOptions server_options;
    server_options.data_dir = (work_ / "server").string();
    server_options.listen = "127.0.0.1:0";
    server_options.clock = &clock_;
    auto server = server::Ferryd::Start(server_options);
    if (!server.ok()) return Fail(StrCat("ferryd: ", server.status().message()));
    server_ = std::move(*server);

    int count = 3 + static_cast<int>(Pick(4));
    result_.devices = count;
    for (int i = 0; i < count; ++i) {
      Device d;
      d.index = i;
      d.home = work_ / StrCat("dev", i) / "home";
      d.env = std::make_unique<DeviceEnv>(&clock_, &random_);
      if (InMemory(i)) {
        DeviceEnv* env = d.env.get();
        auto mem = std::make_shared<files::MemFileSystem>(
            [env] { return env->NowMs() * int64_t{1000000}; });
        d.folder = std::make_unique<Folder>(mem, "/root");
        if (options_.contacts) d.contacts = std::make_unique<Folder>(mem, "/contacts");
        d.env->mem = mem.get();
      } else {
        d.folder = std::make_unique<Folder>(work_ / StrCat("dev", i) / "root");
        if (options_.contacts) {
          d.contacts = std::make_unique<Folder>(work_ / StrCat("dev", i) / "contacts");
        }
      }
      // A third of the devices run days off.
      if (Pick(3) == 0)
        d.env->skew_ms = static_cast<int64_t>(Pick(5 * kDayMs)) - 2 * kDayMs;
      client::LoginOptions login{
          d.home.string(),  server_->address(),     "sim", "sim passphrase",
          StrCat("dev", i), server_->fingerprint(), true};
      // Time in the simulation is simulated; only a stopped or starved process (a
      // machine busy with other work) makes a real deadline pass, and that is no
      // fault of the code under test.
      login.call_timeout_ms = kSimCallTimeoutMs;
      auto device =
          i == 0 ? client::Device::CreateAccount(login) : client::Device::Login(login);
      if (!device.ok()) return Fail(StrCat("login: ", device.status().message()));
      d.device = std::move(*device);
      auto info = i == 0 ? d.device->CreateCollection("Sim", "files")
                         : d.device->FindCollection("Sim");
      if (!info.ok()) return Fail(StrCat("collection: ", info.status().message()));
      d.info = *info;
      if (options_.contacts) {
        auto people = i == 0 ? d.device->CreateCollection("People", "contacts")
                             : d.device->FindCollection("People");
        if (!people.ok()) return Fail(StrCat("contacts: ", people.status().message()));
        d.contacts_info = *people;
      }
      devices_.push_back(std::move(d));
    }

    faults_on_ = true;
    for (int step = 0; step < options_.steps; ++step) {
      clock_.Advance(1000 + static_cast<int64_t>(Pick(20000)));
      if (Pick(20) == 0) clock_.Advance(3600 * 1000);
      Device& d = devices_[Pick(devices_.size())];
      std::string line = StrCat("s", step, " d", d.index, " ");
      if (d.offline_until > step) {
        Trace(line + "offline");
        continue;
      }
      uint64_t r = Pick(100);
      // A third of the actions and syncs are about contacts, when there are some.
      const bool people = options_.contacts && Pick(3) == 0;
      if (r < 50) {
        line += people ? ContactAction(d) : UserAction(d);
      } else if (r < 92) {
        FaultPlan plan = DrawFault();
        SyncReport report;
        const bool allow_mass_delete = Pick(2) == 0;
        const bool unchanged = Pick(4) == 0;
        absl::Status s = Sync(d, people, plan, allow_mass_delete, &report, unchanged);
        result_.syncs += 1;
        line += StrCat(people ? "sync-contacts" : "sync", unchanged ? "-unchanged" : "",
                       " fault=", KindName(plan.kind), ":", plan.call, "#", plan.nth,
                       " -> ", absl::StatusCodeToString(s.code()));
        if (options_.verbose) {
          std::printf("    (pulled %llu, pushed %llu, seq %llu)\n",
                      static_cast<unsigned long long>(report.pulled_items),
                      static_cast<unsigned long long>(report.pushed_items),
                      static_cast<unsigned long long>(report.head_seq));
        }
      } else if (r < 97) {
        d.offline_until = step + 1 + static_cast<int>(Pick(15));
        line += StrCat("offline until s", d.offline_until);
      } else {
        d.env->skew_ms = static_cast<int64_t>(Pick(5 * kDayMs)) - 2 * kDayMs;
        line += "clock skewed";
      }
      Trace(line);
    }

    // Heal and drain: no faults, everyone online, syncs until a whole round moves
    // nothing.
    faults_on_ = false;
    bool quiet = false;
    for (int round = 0; round < kDrainRoundsMax && !quiet; ++round) {
      quiet = true;
      std::set<uint64_t> heads;  // quiet also means everyone saw the same head
      std::set<uint64_t> contact_heads;
      for (Device& d : devices_) {
        for (bool people : {false, true}) {
          if (people && !options_.contacts) continue;
          clock_.Advance(1000);
          SyncReport report;
          absl::Status s = Sync(d, people, FaultPlan(), true, &report);
          result_.syncs += 1;
          if (!s.ok()) {
            if (options_.verbose) PrintLog();
            return Fail(StrCat("drain sync of dev", d.index, people ? " (contacts)" : "",
                               ": ", s.ToString()));
          }
          if (report.pushed_items != 0 || report.pulled_items != 0) quiet = false;
          (people ? contact_heads : heads).insert(report.head_seq);
        }
      }
      if (heads.size() > 1 || contact_heads.size() > 1) quiet = false;
    }
    if (!quiet) return Fail(StrCat("no quiet round after ", kDrainRoundsMax, " rounds"));
    return Check();
  }

  // What differs between dev0's `first` and device `index`'s `other` (path -> what a
  // person would compare), for the failure message; `values` also shows both sides.
  static std::string Differences(const std::map<std::string, std::string>& first,
                                 const std::map<std::string, std::string>& other,
                                 int index, bool values) {
    std::string diff;
    for (const auto& [path, what] : first) {
      auto it = other.find(path);
      if (it == other.end()) {
        diff += StrCat(" missing on dev", index, ": ", path, ";");
      } else if (it->second != what) {
        diff += StrCat(" differs: ", path,
                       values ? StrCat(": ", what, " / ", it->second) : "", ";");
      }
    }
    for (const auto& [path, what] : other) {
      if (!first.contains(path)) diff += StrCat(" only on dev", index, ": ", path, ";");
    }
    return diff.substr(0, 800);
  }

  // Contacts: every device holds the same records (compared field by field, as
  // files may be laid out differently), and every note a user wrote and nobody
  // replaced where they saw it is in a record or in a device's conflict log.
  SimResult CheckContacts() {
    auto records = [](const Device& d) {
      std::map<std::string, std::string> out;
      for (const auto& [rel, e] : d.contacts->Walk()) {
        if (e.stat.type != files::FileStat::kFile) continue;
        auto record = pim::ParseRecord(pim::RecordKind::kContact, e.data);
        if (!record.ok()) {
          out[rel] = StrCat("unparsable: ", record.status().message());
          continue;
        }
        std::string fields;
        for (const auto& [name, value] : record->fields) {
          fields += StrCat(name, "=", value, ";");
        }
        out[rel] = fields;
      }
      return out;
    };
    auto first = records(devices_[0]);
    for (const Device& d : devices_) {
      auto other = records(d);
      if (other == first) continue;
      return Fail(StrCat("contacts of dev0 and dev", d.index,
                         " differ:", Differences(first, other, d.index, true)));
    }
    std::string kept;
    for (const auto& [rel, fields] : first) kept += fields;
    for (const Device& d : devices_) {
      auto shadow = engine::ShadowStore::Open((d.home / "contacts-shadow.db").string());
      if (!shadow.ok())
        return Fail(StrCat("contacts shadow: ", shadow.status().message()));
      auto conflicts = (*shadow)->Conflicts();
      if (!conflicts.ok())
        return Fail(StrCat("conflicts: ", conflicts.status().message()));
      for (const engine::ConflictRecord& c : *conflicts) {
        kept += c.kept_value + ";" + c.other_value + ";";
      }
    }
    int lost = 0;
    for (const auto& [marker, live] : notes_live_) {
      if (live && kept.find(marker) == std::string::npos) ++lost;
    }
    if (lost > 0)
      return Fail(StrCat(lost, " contact notes are nowhere in the final state"));
    for (const auto& [rel, fields] : first) Trace(StrCat("contact ", rel, " ", fields));
    SimResult ok;
    ok.ok = true;
    return ok;
  }

  // Every transaction of the log, for a person reading a failing seed.
  void PrintLog() {
    PrintLog(devices_[0].info);
    if (options_.contacts) {
      std::printf("  contacts:\n");
      PrintLog(devices_[0].contacts_info);
    }
  }
  void PrintLog(const client::CollectionInfo& info) {
    auto log = devices_[0].device->ReadLog(info, 0);
    if (!log.ok()) return;
    for (const auto& [seq, tx] : *log) {
      std::string line =
          StrCat("seq ", seq, " ", Canonical(tx.device_id().substr(0, 8)), ":");
      for (const v1::Op& op : tx.ops()) {
        if (op.has_put()) line += StrCat(" put ", Canonical(op.put().item().id()));
        if (op.has_patch()) line += StrCat(" patch ", Canonical(op.patch().id()));
        if (op.has_delete_()) line += StrCat(" delete ", Canonical(op.delete_().id()));
        if (op.has_move()) {
          line += StrCat(" move ", Canonical(op.move().from_id()), "->",
                         Canonical(op.move().to_id()));
        }
      }
      std::printf("  %s\n", line.c_str());
    }
  }

  SimResult Check() {
    if (options_.verbose) PrintLog();
    // 1. Every device holds the same tree.
    auto first = Describe(devices_[0]);
    for (const Device& d : devices_) {
      auto other = Describe(d);
      if (other == first) continue;
      return Fail(StrCat("dev0 and dev", d.index,
                         " differ:", Differences(first, other, d.index, false)));
    }
    // 2. No edit is lost: every content no user replaced knowingly is somewhere.
    std::set<size_t> present;
    for (const auto& [rel, e] : devices_[0].folder->Walk()) {
      if (e.stat.type == files::FileStat::kFile) {
        present.insert(std::hash<std::string>()(e.data));
      }
    }
    int lost = 0;
    for (const auto& [hash, live] : live_) {
      if (live && !present.contains(hash)) ++lost;
    }
    if (lost > 0) return Fail(StrCat(lost, " edits are nowhere in the final state"));
    // 3. The log is linear: seqs 1..head, each an authentic transaction.
    auto log = devices_[0].device->ReadLog(devices_[0].info, 0);
    if (!log.ok()) return Fail(StrCat("log: ", log.status().message()));
    for (size_t i = 0; i < log->size(); ++i) {
      if ((*log)[i].first != i + 1) return Fail(StrCat("log gap at ", i + 1));
    }
    // 4. No temporary file of ferry's is left once every device has synced in peace:
    //    each drain sync's scan removes what a crash left (the folder lock makes all of
    //    them leftovers), and what a sync writes is renamed or removed before it ends.
    for (const Device& d : devices_) {
      for (const Folder* folder : {d.folder.get(), d.contacts.get()}) {
        if (folder == nullptr) continue;
        if (std::string temp = folder->FindTemp(); !temp.empty()) {
          return Fail(StrCat("temporary file ", temp, " left in dev", d.index, "'s ",
                             folder == d.folder.get() ? "folder" : "contacts"));
        }
      }
    }
    // 5. Nothing outside a root: the sandbox holds only what the run made.
    if (ReadAll(work_ / "outside" / "sentinel") != "keep me" ||
        std::distance(fs::directory_iterator(work_ / "outside"),
                      fs::directory_iterator()) != 1) {
      return Fail("something changed outside the roots");
    }
    const std::vector<std::string> tops =
        options_.contacts ? std::vector<std::string>{"contacts", "outside", "root"}
                          : std::vector<std::string>{"outside", "root"};
    for (const Device& d : devices_) {
      if (!d.folder->OutsideUntouched(tops)) {
        return Fail(StrCat("something changed outside dev", d.index, "'s folders"));
      }
    }
    if (options_.contacts) {
      SimResult people = CheckContacts();
      if (!people.ok) return people;
    }
    for (const auto& entry : fs::directory_iterator(work_)) {
      std::string name = entry.path().filename().string();
      if (name != "outside" && name != "server" && !name.starts_with("dev")) {
        return Fail(StrCat("unexpected ", name, " in the sandbox"));
      }
    }
    // 6. No plaintext on the server: no content marker, no file name.
    std::string stored;
    for (const auto& entry : fs::recursive_directory_iterator(work_ / "server")) {
      if (entry.is_regular_file()) stored += ReadAll(entry.path());
    }
    for (const std::string& marker : markers_) {
      if (stored.find(marker) != std::string::npos)
        return Fail("plaintext on the server");
    }
    for (const std::string& name : names_) {
      if (stored.find(name) != std::string::npos) {
        return Fail(StrCat("file name ", name, " in plaintext on the server"));
      }
    }
    for (const auto& [path, what] : first) Trace(StrCat("final ", path, " ", what));
    Trace(StrCat("log ", log->size()));
    SimResult ok = result_;
    ok.ok = true;
    ok.trace_hash = trace_hash_;
    return ok;
  }

  SimOptions options_;
  Rng rng_;
  SeededRandom random_;
  SimClock clock_;
  fs::path work_;
  std::unique_ptr<server::Ferryd> server_;
  std::vector<Device> devices_;
  bool faults_on_ = false;
  std::map<size_t, bool> live_;
  std::map<std::string, bool> notes_live_;  // contact notes by marker
  std::vector<std::string> markers_;
  std::set<std::string> names_;
  uint64_t trace_hash_ = kFnv1aOffset;
  SimResult result_;
};

}  // namespace

SimResult RunSeed(const SimOptions& options) { return Run(options).Go(); }

}  // namespace ferry::sim
