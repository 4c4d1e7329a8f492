// Time, behind an interface so tests and the simulation can control it.
#ifndef FERRY_CORE_CLOCK_H_
#define FERRY_CORE_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace ferry {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch.
  virtual int64_t NowMs() = 0;
  // Milliseconds of a clock that never goes back, for measuring how old something is
  // (any origin). By default NowMs(), for clocks that tests drive by hand.
  virtual int64_t MonotonicMs() { return NowMs(); }
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace ferry

#endif  // FERRY_CORE_CLOCK_H_
