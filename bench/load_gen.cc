// A load generator for ferryd: N simulated devices over real gRPC + TLS, each with its
// own account, collection and connection, each appending small sealed transactions at
// a paced rate and pulling now and then. Reports appends/s, latency percentiles and
// errors.
//
// Latency is measured from the moment an append was due, not from when it was sent:
// when the server falls behind, the wait for a turn counts too (no coordinated
// omission). A device has one call in flight at a time, as a real device does; its
// next append is due one interval after the last one was due. With --rate 0 every
// device appends back to back (a closed loop), which finds the most the server can take
// but then latency is mostly queueing.
//
// The devices share one pacing thread and gRPC's callback threads instead of a thread
// each: the generator runs on the same cores as the server it measures, so every CPU
// second it saves is one the server gets (docs/performance.md).
//
// Usage: load_gen --server HOST:PORT --fingerprint SHA256:... [--devices 200]
//                 [--rate 2000] [--seconds 10] [--pull-every 5] [--label NAME]
// bench/load.sh starts the database and ferryd and runs this for both backends.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proto/ferry/v1/store.grpc.pb.h"
#include "src/client/device.h"
#include "src/net/client.h"
#include "src/rpc/status.h"
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
  int timeout_ms = 15000;  // deadline of each call
};

struct Totals {
  std::vector<int64_t> latencies_us;
  std::vector<int64_t> lags_us;  // how late the generator sent each append
  uint64_t lost = 0;             // acknowledged appends missing from the log
  uint64_t appends = 0;
  uint64_t conflicts = 0;
  uint64_t pulls = 0;
  std::map<std::string, uint64_t> errors;  // by status code
};

// One simulated device: its own channel (one TLS connection) and its one call in
// flight. Touched by one thread at a time: the pacer issues a call, and gRPC's callback
// for it runs after the call was issued; the next call is issued only after that.
struct Simulated {
  std::string device_id;
  client::CollectionInfo collection;
  std::unique_ptr<v1::Store::Stub> stub;
  std::string bearer;
  uint64_t head = 0;
  uint64_t pulled = 0;
  uint64_t k = 0;         // appends issued
  Clock::time_point due;  // of the append in flight, or of the next one
  std::unique_ptr<grpc::ClientContext> context;
  v1::AppendRequest append;
  v1::AppendResponse appended;
  v1::PullRequest pull;
  v1::PullResponse pulled_page;
  Totals totals;
};

std::string Sealed(Simulated& sim, const std::string& value) {
  v1::Transaction tx;
  tx.set_tx_id(seal::RandomBytes(seal::kTxIdBytes));
  tx.set_device_id(sim.device_id);
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

// Drives every device: a queue of (due time, device) that one thread sleeps on and
// issues calls from; completions (on gRPC's threads) put the device back.
class Load {
 public:
  Load(const Options& options, std::vector<Simulated>& sims)
      : options_(options),
        sims_(sims),
        value_(static_cast<size_t>(options.value_bytes), 'v'),
        paced_(options.rate > 0),
        interval_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(paced_ ? options.devices / options.rate : 0))) {
  }

  // Returns once every device's last call has completed.
  void Run(Clock::time_point start) {
    end_ = start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(options_.seconds));
    {
      std::lock_guard lock(mu_);
      for (size_t i = 0; i < sims_.size(); ++i) {
        // Devices start spread over one interval, not all at once.
        sims_[i].due = start + std::chrono::duration_cast<Clock::duration>(
                                   interval_ * static_cast<double>(i) /
                                   static_cast<double>(sims_.size()));
        ready_.push({sims_[i].due, i});
      }
      active_ = sims_.size();
    }
    std::unique_lock lock(mu_);
    while (active_ > 0) {
      if (ready_.empty()) {
        wake_.wait(lock);
        continue;
      }
      Clock::time_point due = ready_.top().first;
      if (paced_ && Clock::now() < due) {
        wake_.wait_until(lock, due);  // an earlier device may come back meanwhile
        continue;
      }
      size_t i = ready_.top().second;
      ready_.pop();
      lock.unlock();
      IssueAppend(sims_[i]);
      lock.lock();
    }
  }

 private:
  void Prepare(Simulated& sim) {
    sim.context = std::make_unique<grpc::ClientContext>();
    sim.context->set_deadline(std::chrono::system_clock::now() +
                              std::chrono::milliseconds(options_.timeout_ms));
    sim.context->AddMetadata("authorization", sim.bearer);
  }

  void IssueAppend(Simulated& sim) {
    Prepare(sim);
    sim.append.set_collection_id(sim.collection.collection_id);
    sim.append.set_envelope(Sealed(sim, value_));
    sim.append.set_fencing_token(0);
    sim.k++;
    Clock::time_point sent = Clock::now();
    sim.stub->async()->Append(
        sim.context.get(), &sim.append, &sim.appended,
        [this, &sim, sent](grpc::Status status) { Appended(sim, sent, status); });
  }

  void Appended(Simulated& sim, Clock::time_point sent, const grpc::Status& status) {
    Clock::time_point done = Clock::now();
    if (status.ok()) {
      sim.head = sim.appended.seq();
      sim.totals.appends++;
      sim.totals.lags_us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(sent - sim.due).count());
      sim.totals.latencies_us.push_back(
          std::chrono::duration_cast<std::chrono::microseconds>(done -
                                                                (paced_ ? sim.due : sent))
              .count());
    } else if (status.error_code() == grpc::StatusCode::ABORTED) {
      sim.totals.conflicts++;  // not expected with one device per collection
    } else {
      Error(sim, status);
    }
    // A conflict pulls at once, which also tells the device the head.
    if ((options_.pull_every > 0 &&
         sim.k % static_cast<uint64_t>(options_.pull_every) == 0) ||
        status.error_code() == grpc::StatusCode::ABORTED) {
      Prepare(sim);
      sim.pull.set_collection_id(sim.collection.collection_id);
      sim.pull.set_after_seq(sim.pulled);
      sim.pull.set_limit(0);
      sim.stub->async()->Pull(sim.context.get(), &sim.pull, &sim.pulled_page,
                              [this, &sim](grpc::Status pulled) { Pulled(sim, pulled); });
      return;
    }
    Next(sim);
  }

  void Pulled(Simulated& sim, const grpc::Status& status) {
    if (status.ok()) {
      sim.totals.pulls++;
      const v1::PullResponse& page = sim.pulled_page;
      if (page.entries_size() > 0)
        sim.pulled = page.entries(page.entries_size() - 1).seq();
      sim.head = page.head_seq();
    } else {
      Error(sim, status);
    }
    Next(sim);
  }

  void Error(Simulated& sim, const grpc::Status& status) {
    sim.totals.errors[absl::StatusCodeToString(rpc::FromGrpc(status).code())]++;
  }

  // The device's next append is due one interval after this one was (at once in a
  // closed loop); past the end, the device is done.
  void Next(Simulated& sim) {
    sim.due = paced_ ? sim.due + interval_ : Clock::now();
    std::lock_guard lock(mu_);
    if (sim.due >= end_ || (!paced_ && Clock::now() >= end_)) {
      active_--;
    } else {
      ready_.push({sim.due, static_cast<size_t>(&sim - sims_.data())});
    }
    wake_.notify_one();
  }

  const Options& options_;
  std::vector<Simulated>& sims_;
  const std::string value_;
  const bool paced_;
  const Clock::duration interval_;
  Clock::time_point end_;

  std::mutex mu_;
  std::condition_variable wake_;
  using Due = std::pair<Clock::time_point, size_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> ready_;  // guarded
  size_t active_ = 0;  // devices not yet done; guarded by mu_
};

// A channel of the device's own, pinned to the certificate its login pinned, and
// connected (TLS handshake done) so that the measured run does not pay for it.
absl::StatusOr<std::unique_ptr<v1::Store::Stub>> OpenStub(client::Device& device,
                                                          int timeout_ms) {
  // A connection of its own, as 200 real devices would have; the device's client (and
  // its connection) goes once this is up.
  std::shared_ptr<grpc::Channel> channel =
      net::OpenPinnedChannel(device.state().server, device.client().server_cert_pem());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::milliseconds(timeout_ms))) {
    return absl::UnavailableError("cannot connect a device's channel");
  }
  return v1::Store::NewStub(channel);
}

int Run(const Options& options) {
  // Debian's Abseil checks every lock for cycles; gRPC's locks pay for it on every call.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
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
        auto stub = OpenStub(**device, options.timeout_ms);
        if (!stub.ok()) {
          if (failed++ == 0)
            std::fprintf(stderr, "setup: %s\n", stub.status().ToString().c_str());
          continue;
        }
        Simulated& sim = sims[static_cast<size_t>(i)];
        sim.bearer = "Bearer " + (*device)->state().token;
        sim.device_id = (*device)->state().device_id;
        sim.collection = *std::move(collection);
        sim.stub = *std::move(stub);
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

  Load load(options, sims);
  Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
  load.Run(start);
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();

  // Every acknowledged append is in the log: with one device per collection, each
  // head is at least the number of appends acknowledged (more when an append that
  // failed, say past its deadline, was committed all the same).
  for (Simulated& sim : sims) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options.timeout_ms));
    context.AddMetadata("authorization", sim.bearer);
    v1::HeadRequest request;
    request.set_collection_id(sim.collection.collection_id);
    v1::HeadResponse head;
    grpc::Status status = sim.stub->Head(&context, request, &head);
    if (!status.ok()) {
      sim.totals.errors[absl::StatusCodeToString(rpc::FromGrpc(status).code())]++;
    } else if (head.head_seq() < sim.totals.appends) {
      sim.totals.lost += sim.totals.appends - head.head_seq();
      sim.totals.errors["LOST"]++;
    }
  }

  Totals all;
  for (const Simulated& sim : sims) {
    const Totals& t = sim.totals;
    all.latencies_us.insert(all.latencies_us.end(), t.latencies_us.begin(),
                            t.latencies_us.end());
    all.lags_us.insert(all.lags_us.end(), t.lags_us.begin(), t.lags_us.end());
    all.lost += t.lost;
    all.appends += t.appends;
    all.conflicts += t.conflicts;
    all.pulls += t.pulls;
    for (const auto& [code, n] : t.errors) all.errors[code] += n;
  }
  std::sort(all.latencies_us.begin(), all.latencies_us.end());
  std::sort(all.lags_us.begin(), all.lags_us.end());
  auto percentile_ms = [](const std::vector<int64_t>& sorted, double p) {
    if (sorted.empty()) return 0.0;
    size_t at = std::min(sorted.size() - 1,
                         static_cast<size_t>(p * static_cast<double>(sorted.size())));
    return static_cast<double>(sorted[at]) / 1000.0;
  };
  uint64_t errors = 0;
  for (const auto& [code, n] : all.errors) errors += n;
  const std::vector<int64_t>& lat = all.latencies_us;
  std::printf(
      "%s: %d devices, target %s/s, %.1f s (setup %.1f s)\n"
      "  appends %llu = %.0f/s   latency p50 %.2f ms  p99 %.2f ms  max %.2f ms\n"
      "  pulls %llu = %.0f/s   conflicts %llu   errors %llu   lost %llu\n"
      "  generator's send lag p50 %.2f ms  p99 %.2f ms\n",
      options.label.c_str(), options.devices,
      options.rate > 0 ? std::to_string(static_cast<int>(options.rate)).c_str() : "max",
      elapsed_s, setup_s, static_cast<unsigned long long>(all.appends),
      static_cast<double>(all.appends) / elapsed_s, percentile_ms(lat, 0.50),
      percentile_ms(lat, 0.99), percentile_ms(lat, 1.0),
      static_cast<unsigned long long>(all.pulls),
      static_cast<double>(all.pulls) / elapsed_s,
      static_cast<unsigned long long>(all.conflicts),
      static_cast<unsigned long long>(errors), static_cast<unsigned long long>(all.lost),
      percentile_ms(all.lags_us, 0.50), percentile_ms(all.lags_us, 0.99));
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
