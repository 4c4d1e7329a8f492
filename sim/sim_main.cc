// ferry_sim: runs the deterministic simulation for a range of seeds.
//   ferry_sim --seeds N --seed-start S [--steps K] [--fs disk|mem|mixed] [--verbose]
//   ferry_sim --determinism SEED    runs SEED twice and compares the trace hashes
// Exit status 1 when any seed fails; the failing seeds are printed.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "sim/sim.h"

int main(int argc, char** argv) {
  CLI::App app{"ferry's deterministic multi-device simulation"};
  uint64_t seeds = 10, seed_start = 1, determinism = 0;
  int steps = 80;
  bool verbose = false;
  std::string fs_name = "mixed";
  bool contacts = true;
  app.add_option("--seeds", seeds, "how many seeds");
  app.add_option("--fs", fs_name,
                 "where the devices' folders are: disk, mem (a crash is a power cut), "
                 "or mixed (each device one or the other, by the seed)")
      ->check(CLI::IsMember({"disk", "mem", "mixed"}))
      ->capture_default_str();
  app.add_option("--contacts", contacts,
                 "each device also syncs contacts (false: runs recorded before)")
      ->capture_default_str();
  app.add_option("--seed-start", seed_start, "the first seed");
  app.add_option("--steps", steps, "random steps per seed before healing");
  app.add_option("--determinism", determinism, "run this seed twice, compare traces");
  app.add_flag("--verbose", verbose, "print every step");
  CLI11_PARSE(app, argc, argv);
  const ferry::sim::SimFs fs = fs_name == "disk"  ? ferry::sim::SimFs::kDisk
                               : fs_name == "mem" ? ferry::sim::SimFs::kMem
                                                  : ferry::sim::SimFs::kMixed;

  if (determinism != 0) {
    ferry::sim::SimOptions options{determinism, steps, verbose, fs, contacts};
    ferry::sim::SimResult a = ferry::sim::RunSeed(options);
    ferry::sim::SimResult b = ferry::sim::RunSeed(options);
    if (!a.ok || !b.ok) {
      std::printf("FAIL %s\n", (a.ok ? b : a).failure.c_str());
      return 1;
    }
    std::printf("seed %llu: trace %016llx and %016llx\n",
                static_cast<unsigned long long>(determinism),
                static_cast<unsigned long long>(a.trace_hash),
                static_cast<unsigned long long>(b.trace_hash));
    return a.trace_hash == b.trace_hash ? 0 : 1;
  }
  int failed = 0;
  long long syncs = 0, faults = 0, conflicts = 0;
  for (uint64_t seed = seed_start; seed < seed_start + seeds; ++seed) {
    ferry::sim::SimResult r = ferry::sim::RunSeed({seed, steps, verbose, fs, contacts});
    syncs += r.syncs;
    faults += r.faults;
    conflicts += r.conflicts;
    if (!r.ok) {
      ++failed;
      std::printf("FAIL %s\n", r.failure.c_str());
      std::fflush(stdout);
    } else if (verbose) {
      std::printf("seed %llu ok: %d devices, trace %016llx\n",
                  static_cast<unsigned long long>(seed), r.devices,
                  static_cast<unsigned long long>(r.trace_hash));
    }
  }
  std::printf(
      "%llu seeds from %llu: %d failed; %lld syncs, %lld faults, %lld conflicts\n",
      static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(seed_start),
      failed, syncs, faults, conflicts);
  return failed == 0 ? 0 : 1;
}
