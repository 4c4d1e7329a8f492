// MemFsEnv: an Env whose folders are in a MemFileSystem, for tests and the simulation;
// time and randomness come from another Env (the simulation's own clock and seeded
// randomness, or the real ones).
#ifndef FERRY_CONNECTORS_FILES_MEM_ENV_H_
#define FERRY_CONNECTORS_FILES_MEM_ENV_H_

#include <cassert>
#include <memory>
#include <string>

#include "include/ferry/engine.h"
#include "src/connectors/files/mem_file_system.h"

namespace ferry::files {

class MemFsEnv final : public Env {
 public:
  // `fs` and `base` must outlive this; `base` nullptr: Env::Default().
  explicit MemFsEnv(MemFileSystem* fs, Env* base = nullptr)
      : fs_(fs), base_(base != nullptr ? base : Env::Default()) {
    assert(fs_ != nullptr);
  }
  int64_t NowMs() override { return base_->NowMs(); }
  std::string RandomBytes(size_t n) override { return base_->RandomBytes(n); }
  absl::StatusOr<std::unique_ptr<RootDir>> OpenRoot(const std::string& path) override {
    return fs_->OpenRoot(path);
  }
  MemFileSystem& fs() { return *fs_; }

 private:
  MemFileSystem* const fs_;
  Env* const base_;
};

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_MEM_ENV_H_
