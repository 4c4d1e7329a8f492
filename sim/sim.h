// The deterministic multi-device simulation: one seeded random generator drives a
// ferryd (real services, real SQLite backend, in this process, on loopback) and 3-6
// devices, each a real sync engine with its own shadow and files connector over its
// own folder. Random user actions (create, edit, delete, rename and move files and
// directories), syncs and faults are interleaved; then every fault is healed, every
// device syncs until nothing moves, and the invariants of ARCHITECTURE §8 are checked.
//
// Faults come through wrappers around the real interfaces, never through #ifdefs in
// the logic: a net::Client that fails a call before or after the server did it, or
// crashes the device at a call (it restarts from what it made durable: its shadow and
// its folder); a Connector that crashes before or after an apply, or lets the "user"
// change a file between the scan and the apply; a server clock that jumps past the
// lease's expiry in the middle of a cycle; device clocks skewed by days.
//
// A run is a function of its seed: the same seed gives the same trace (the trace hash
// covers every step's outcome and the final state, with the server's random ids
// replaced by device numbers).
#ifndef FERRY_SIM_SIM_H_
#define FERRY_SIM_SIM_H_

#include <cstdint>
#include <string>

namespace ferry::sim {

// Where the devices' folders are: on disk (a tmpfs when there is one), or each in its
// own files::MemFileSystem, where a device's crash is also a power cut (everything it
// had not made durable is gone); kMixed: each device one or the other, by the seed.
enum class SimFs { kDisk, kMem, kMixed };

struct SimOptions {
  uint64_t seed = 1;
  int steps = 80;        // random steps before the heal-and-drain phase
  bool verbose = false;  // print every step
  SimFs fs = SimFs::kMixed;
  // Each device also syncs a folder of contacts (vCard files) whose fields its user
  // edits. Off: the steps of runs made before contacts were simulated.
  bool contacts = true;
};

struct SimResult {
  bool ok = true;
  std::string failure;  // what broke, for people
  uint64_t trace_hash = 0;
  int devices = 0;
  int syncs = 0;
  int faults = 0;
  int conflicts = 0;
};

SimResult RunSeed(const SimOptions& options);

}  // namespace ferry::sim

#endif  // FERRY_SIM_SIM_H_
