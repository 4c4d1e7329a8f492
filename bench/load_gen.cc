// A load generator for ferryd: N simulated devices over real gRPC + TLS, each with its
// own account and collection, each appending small sealed transactions at a paced rate
// and pulling now and then. Reports appends/s, latency percentiles and errors.
//
// Latency is measured from the moment an append was due, not from when it was sent:
// when the server falls behind, the wait for a turn counts too (no coordinated
// omission). With --rate 0 every device appends back to back (a closed loop), which
// finds the most the server can take but then latency is mostly queueing.
//
// Usage: load_gen --server HOST:PORT --fingerprint SHA256:... [--devices 200]
//                 [--rate 2000] [--seconds 10] [--pull-every 5] [--label NAME]
// bench/load.sh starts the database and ferryd and runs this for both backends.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/client/device.h"
#include "src/seal/seal.h"

namespace ferry {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string server;
  std::string fingerprint;
  std::string label = "ferryd";
  int devices = 200;
  double rate = 2000;  // appends per second over all devices; 0: as fast as possible
  double seconds = 10;
  int pull_every = 5;
  int value_bytes = 100;
  int setup_threads = 16;
};

struct Simulated {
  std::unique_ptr<client::Device> device;
  client::CollectionInfo collection;
  uint64_t head = 0;
  uint64_t pulled = 0;
};

struct Totals {
  std::vector<int64_t> latencies_us;
  uint64_t appends = 0;
  uint64_t conflicts = 0;
  uint64_t pulls = 0;
  std::map<std::string, uint64_t> errors;  // by status code
};

std::string Sealed(Simulated& sim, const std::string& value) {
  v1::Transaction tx;
  tx.set_tx_id(seal::RandomBytes(seal::kTxIdBytes));
  tx.set_device_id(sim.device->state().device_id);
  tx.set_base_seq(sim.head);
  v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
  item->set_id(seal::RandomId());
  v1::Field* field = item->add_fields();
  field->set_name("note");
  field->set_bytes(value);
  auto sealed =
      seal::SealTransaction(sim.collection.key, sim.collection.collection_id, tx, {});
  return sealed.ok() ? *sealed : "";
}

// Paces one device: its k-th append is due at start + offset + k * interval.
void RunDevice(const Options& options, Simulated& sim, Clock::time_point start,
               Clock::duration offset, Totals* totals) {
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(options.seconds));
  const bool paced = options.rate > 0;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(paced ? options.devices / options.rate : 0));
  std::string value(static_cast<size_t>(options.value_bytes), 'v');
  Clock::time_point due = start + offset;
  for (uint64_t k = 0; due < end; ++k, due += interval) {
    if (paced) std::this_thread::sleep_until(due);
    Clock::time_point sent = Clock::now();
    auto result =
        sim.device->client().Append(sim.collection.collection_id, Sealed(sim, value), 0);
    Clock::time_point done = Clock::now();
    if (result.ok()) {
      sim.head = result->seq();
      totals->appends++;
      totals->latencies_us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(done -
                                                                (paced ? due : sent))
              .count());
    } else if (absl::IsAborted(result.status())) {
      totals->conflicts++;  // not expected with one device per collection
      auto head = sim.device->client().Head(sim.collection.collection_id);
      if (head.ok()) sim.head = *head;
    } else {
      totals->errors[absl::StatusCodeToString(result.status().code())]++;
    }
    if (options.pull_every > 0 &&
        (k + 1) % static_cast<uint64_t>(options.pull_every) == 0) {
      auto page = sim.device->client().Pull(sim.collection.collection_id, sim.pulled, 0);
      if (page.ok()) {
        totals->pulls++;
        if (page->entries_size() > 0) {
          sim.pulled = page->entries(page->entries_size() - 1).seq();
        }
      } else {
        totals->errors[absl::StatusCodeToString(page.status().code())]++;
      }
    }
    if (!paced && Clock::now() >= end) break;
  }
}

int Run(const Options& options) {
  seal::Init();
  std::string home = std::filesystem::temp_directory_path() /
                     ("ferry-load-" + seal::RandomId().substr(0, 8));
  std::string run = seal::RandomId().substr(0, 8);  // users are new on every run
  std::vector<Simulated> sims(static_cast<size_t>(options.devices));
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  auto setup_start = Clock::now();
  std::vector<std::thread> setup;
  for (int t = 0; t < options.setup_threads; ++t) {
    setup.emplace_back([&] {
      for (int i = next++; i < options.devices; i = next++) {
        std::string name = "load-" + run + "-" + std::to_string(i);
        client::LoginOptions login{
            home + "/" + name,    options.server, name,
            "passphrase " + name, "device",       options.fingerprint,
            /*fast_kdf=*/true};
        auto device = client::Device::CreateAccount(login);
        if (!device.ok()) {
          if (failed++ == 0)
            std::fprintf(stderr, "setup: %s\n", device.status().ToString().c_str());
          continue;
        }
        auto collection = (*device)->CreateCollection("notes", "pim");
        if (!collection.ok()) {
          if (failed++ == 0)
            std::fprintf(stderr, "setup: %s\n", collection.status().ToString().c_str());
          continue;
        }
        sims[static_cast<size_t>(i)].device = *std::move(device);
        sims[static_cast<size_t>(i)].collection = *std::move(collection);
      }
    });
  }
  for (auto& t : setup) t.join();
  if (failed > 0) {
    std::fprintf(stderr, "%d of %d devices could not be set up\n", failed.load(),
                 options.devices);
    std::filesystem::remove_all(home);
    return 1;
  }
  double setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();

  std::vector<Totals> totals(sims.size());
  std::vector<std::thread> workers;
  Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
  const double interval_s = options.rate > 0 ? options.devices / options.rate : 0;
  for (size_t i = 0; i < sims.size(); ++i) {
    // Devices start spread over one interval, not all at once.
    auto offset =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
            interval_s * static_cast<double>(i) / static_cast<double>(sims.size())));
    workers.emplace_back(
        [&, i, offset] { RunDevice(options, sims[i], start, offset, &totals[i]); });
  }
  for (auto& t : workers) t.join();
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();

  Totals all;
  for (Totals& t : totals) {
    all.latencies_us.insert(all.latencies_us.end(), t.latencies_us.begin(),
                            t.latencies_us.end());
    all.appends += t.appends;
    all.conflicts += t.conflicts;
    all.pulls += t.pulls;
    for (const auto& [code, n] : t.errors) all.errors[code] += n;
  }
  std::sort(all.latencies_us.begin(), all.latencies_us.end());
  auto percentile_ms = [&](double p) {
    if (all.latencies_us.empty()) return 0.0;
    size_t at =
        std::min(all.latencies_us.size() - 1,
                 static_cast<size_t>(p * static_cast<double>(all.latencies_us.size())));
    return static_cast<double>(all.latencies_us[at]) / 1000.0;
  };
  uint64_t errors = 0;
  for (const auto& [code, n] : all.errors) errors += n;
  std::printf(
      "%s: %d devices, target %s/s, %.1f s (setup %.1f s)\n"
      "  appends %llu = %.0f/s   latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n"
      "  pulls %llu = %.0f/s   conflicts %llu   errors %llu\n",
      options.label.c_str(), options.devices,
      options.rate > 0 ? std::to_string(static_cast<int>(options.rate)).c_str() : "max",
      elapsed_s, setup_s, static_cast<unsigned long long>(all.appends),
      static_cast<double>(all.appends) / elapsed_s, percentile_ms(0.50),
      percentile_ms(0.99), percentile_ms(1.0), static_cast<unsigned long long>(all.pulls),
      static_cast<double>(all.pulls) / elapsed_s,
      static_cast<unsigned long long>(all.conflicts),
      static_cast<unsigned long long>(errors));
  for (const auto& [code, n] : all.errors) {
    std::printf("  error %s: %llu\n", code.c_str(), static_cast<unsigned long long>(n));
  }
  std::filesystem::remove_all(home);
  return errors == 0 ? 0 : 3;
}

}  // namespace
}  // namespace ferry

int main(int argc, char** argv) {
  ferry::Options options;
  CLI::App app{"load_gen: simulated devices appending to a ferryd", "load_gen"};
  app.add_option("--server", options.server, "ferryd's HOST:PORT")->required();
  app.add_option("--fingerprint", options.fingerprint, "ferryd's SHA256:... fingerprint")
      ->required();
  app.add_option("--devices", options.devices, "simulated devices")
      ->capture_default_str()
      ->check(CLI::Range(1, 5000));
  app.add_option("--rate", options.rate,
                 "appends per second in all; 0: as fast as possible")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--seconds", options.seconds, "how long to append")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--pull-every", options.pull_every,
                 "a pull after every N appends (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--value-bytes", options.value_bytes, "bytes of the one field changed")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--label", options.label, "name printed with the results");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return ferry::Run(options);
}
