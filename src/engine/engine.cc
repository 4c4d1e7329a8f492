// The sync cycle of one collection on one device:
//
//   1. recover a push that a crash interrupted (re-append its envelope: idempotent);
//   2. scan local data; refuse to go on when it looks like data loss (mass deletion);
//   3. pull the transactions after the cursor: theirs = shadow + their ops;
//   4. merge three ways per item (base = shadow, ours = scan, theirs) into actions;
//   5. apply their changes locally, then fold them into the shadow with the cursor;
//   6. push our changes: upload missing chunks, record the intent, compare-and-append;
//      a lost race goes back to 2.
#include "include/ferry/engine.h"

#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "src/connectors/files/root_dir.h"
#include "src/core/clock.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/engine/items.h"
#include "src/engine/shadow_store.h"
#include "src/engine/transfer.h"
#include "src/net/client.h"
#include "src/seal/seal.h"

namespace ferry {
namespace {

using engine::ItemMap;
using engine::ShadowStore;
using engine::ShadowUpdate;
using engine::StampMap;

// Cycles (scan, pull, merge, apply, push) before a sync gives up on losing races.
constexpr int kCyclesMax = 8;
// Ops and serialized bytes per pushed transaction.
constexpr size_t kOpsPerTransactionMax = 1000;
constexpr size_t kTransactionBytesTarget = 1u << 20;
// Waiting for another device's lease: attempts and the pause between them.
constexpr int kLeaseAttemptsMax = 300;
constexpr auto kLeaseRetryPause = std::chrono::milliseconds(200);
// Below this many synced items, only an emptied root trips the mass-deletion guard.
constexpr size_t kMassDeleteItemsMin = 10;
// The shadow stamp of an item this device refused to apply (an invalid path, a symbolic
// link in the way): kept in the shadow so its absence here is not a deletion, retried
// at every sync.
constexpr char kRefusedStamp[] = "refused";
// The shadow stamp of an item whose remote delete this device could not do (a
// directory that still holds ignored files): retried at every sync while unchanged.
constexpr char kRefusedDeleteStamp[] = "refused-delete";
// The shadow stamp of an item whose write this device refused over a local object (a
// file it may not replace): this prefix, then the object's stamp then. While the
// object keeps that stamp it is not a local edit, and the write is retried.
constexpr char kRefusedOverPrefix[] = "refused-over:";

// The shadow stamp of a refused item whose local object had `local_stamp` ("" =
// absent).
std::string RefusedStamp(const std::string& local_stamp) {
  return local_stamp.empty() ? kRefusedStamp : StrCat(kRefusedOverPrefix, local_stamp);
}
// Chunk bytes downloaded ahead of the writes that need them (memory bound), and items
// written as one batch (open descriptors bound).
constexpr uint64_t kPrefetchBytesMax = 32u << 20;
constexpr size_t kApplyBatchItemsMax = 256;
// Local changes between two progress reports.
constexpr uint64_t kProgressEveryItems = 64;

class RealEnv final : public Env {
 public:
  int64_t NowMs() override { return clock_.NowMs(); }
  std::string RandomBytes(size_t n) override { return seal::RandomBytes(n); }

 private:
  SystemClock clock_;
};

// What one remote item went through: the last transaction that touched it.
struct RemoteTouch {
  uint64_t hlc = 0;
  std::string device_id;
};

// The result of pulling: their state and how each item got there.
struct Pulled {
  ItemMap theirs;
  // The states items went through in the pulled transactions and left again (the
  // final ones are in `theirs`): what an interrupted sync may have written here.
  std::map<std::string, std::vector<ItemPtr>> superseded;
  std::map<std::string, RemoteTouch> touched;
  std::map<std::string, std::string> moved_from;  // destination -> source, remote moves
  uint64_t cursor = 0;
  uint64_t hlc = 0;
};

// One local change the merge decided on.
struct LocalAction {
  enum Kind { kWrite, kDelete, kMove } kind = kWrite;
  std::string id;
  std::string from;                 // kMove
  const v1::Item* after = nullptr;  // kWrite
};

struct MergePlan {
  std::vector<LocalAction> actions;      // to apply locally, in order
  std::map<std::string, v1::Item> push;  // ours to push: id -> target item
  std::set<std::string> push_deletes;    // ids we deleted
  std::vector<engine::ConflictRecord> conflicts;
  std::map<std::string, v1::Item> conflict_copies;  // theirs kept beside ours, to write
};

class Cycle {
 public:
  Cycle(const EngineConfig& config, const SyncOptions& options, SyncReport* report)
      : c_(config),
        options_(options),
        report_(report),
        env_(config.env != nullptr ? config.env : Env::Default()),
        hasher_(*config.key),
        transfer_{config.collection_id, config.key, &hasher_,     config.client,
                  config.connector,     report,     config.cache, nullptr} {}

  absl::Status Run();

 private:
  absl::Status CheckConnector();
  absl::Status RecoverIntent();
  absl::Status AcquireLease();
  void ReleaseLease();
  // One pass; sets *again when a race was lost and the cycle must run again. Only the
  // first pass may skip the scan (SyncOptions::assume_unchanged).
  absl::Status RunOnce(bool first, bool* again);
  absl::Status CheckMassDelete(const ItemMap& base, const ScanResult& scan);
  absl::StatusOr<Pulled> Pull(const ItemMap& base, uint64_t cursor);
  MergePlan Merge(const ItemMap& base, const ScanResult& scan, const Pulled& pulled);
  void MergeBothChanged(const std::string& id, const v1::Item* base, const v1::Item* ours,
                        const v1::Item* theirs, const Pulled& pulled, MergePlan* plan);
  void MergeFields(const std::string& id, const v1::Item* base, const v1::Item& ours,
                   const v1::Item& theirs, const RemoteTouch& touch, MergePlan* plan);
  absl::Status ApplyLocal(const MergePlan& plan, const ScanResult& scan, StampMap* stamps,
                          std::set<std::string>* deferred,
                          std::map<std::string, std::string>* refused);
  std::vector<v1::Op> MakeOps(const MergePlan& plan, const ItemMap& synced);
  absl::Status Push(std::vector<v1::Op> ops,
                    const std::map<std::string, LocalItem>& local, ItemMap synced,
                    uint64_t cursor, bool* again);
  absl::Status CommitPushed(const v1::Transaction& tx, uint64_t seq,
                            const std::map<std::string, LocalItem>& local,
                            ItemMap* synced);
  // Renews the lease when half of it has run out, or takes it again when it was lost.
  absl::Status KeepLease();
  uint64_t NextHlc();

  const EngineConfig& c_;
  const SyncOptions& options_;
  SyncReport* report_;
  Env* env_;
  seal::ContentHasher hasher_;
  engine::TransferContext transfer_;
  uint64_t fencing_token_ = 0;
  int64_t lease_expires_ms_ = 0;
  uint64_t hlc_ = 0;
  // This cycle took the shadow for the local data (SyncOptions::assume_unchanged).
  bool scanned_unchanged_ = false;
};

uint64_t Cycle::NextHlc() {
  uint64_t now = static_cast<uint64_t>(env_->NowMs()) << 16;
  hlc_ = std::max(now, hlc_ + 1);
  return hlc_;
}

absl::Status Cycle::CheckConnector() {
  FERRY_ASSIGN_OR_RETURN(std::string stored, c_.shadow->Setting("connector"));
  std::string name(c_.connector->Name());
  if (stored.empty()) {
    ShadowUpdate update;
    update.settings["connector"] = name;
    return c_.shadow->Commit(update);
  }
  if (stored != name) {
    return absl::FailedPreconditionError(
        StrCat("this collection's state was made by connector '", stored, "', not '",
               name, "'"));
  }
  return absl::OkStatus();
}

// A push whose intent was recorded but whose outcome is unknown: the same envelope is
// appended again. Appends are idempotent by tx_id, so a committed one is found, and
// one that was not committed either commits now or lost its base to another device.
absl::Status Cycle::RecoverIntent() {
  FERRY_ASSIGN_OR_RETURN(std::string intent, c_.shadow->Intent());
  if (intent.empty()) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(v1::Transaction tx,
                         seal::OpenTransaction(*c_.key, c_.collection_id, intent));
  FERRY_RETURN_IF_ERROR(KeepLease());
  absl::StatusOr<v1::AppendResponse> appended =
      c_.client->Append(c_.collection_id, intent, fencing_token_);
  if (absl::IsAborted(appended.status()) ||
      absl::IsFailedPrecondition(appended.status())) {
    ShadowUpdate clear;
    clear.intent = "";
    return c_.shadow->Commit(clear);  // not committed; the next scan finds the changes
  }
  FERRY_RETURN_IF_ERROR(appended.status());
  if (!appended->duplicate()) {  // appended now: part of this sync's push
    report_->pushed_transactions += 1;
    report_->pushed_items += static_cast<uint64_t>(tx.ops_size());
    report_->pushed_bytes += intent.size();
  }
  report_->head_seq = std::max(report_->head_seq, appended->seq());
  ItemMap items;
  StampMap stamps;
  FERRY_RETURN_IF_ERROR(c_.shadow->Load(&items, &stamps));
  ShadowUpdate update;
  for (const v1::Op& op : tx.ops()) {
    FERRY_RETURN_IF_ERROR(engine::ApplyOp(op, &items));
    if (op.has_move()) update.erase.push_back(op.move().from_id());
    const std::string& id = engine::OpTarget(op);
    auto it = items.find(id);
    if (it == items.end()) {
      update.erase.push_back(id);
    } else {
      update.put.emplace_back(*it->second, "");  // stamp unknown: the next scan re-reads
    }
  }
  update.cursor = appended->seq();
  update.intent = "";
  return c_.shadow->Commit(update);
}

absl::Status Cycle::AcquireLease() {
  if (!options_.use_lease) return absl::OkStatus();
  for (int attempt = 0; attempt < kLeaseAttemptsMax; ++attempt) {
    absl::StatusOr<v1::Lease> lease =
        c_.client->AcquireLease(c_.collection_id, options_.lease_ttl_ms);
    if (lease.ok()) {
      fencing_token_ = lease->fencing_token();
      lease_expires_ms_ = env_->NowMs() + options_.lease_ttl_ms;  // by our clock
      return absl::OkStatus();
    }
    if (!absl::IsFailedPrecondition(lease.status())) return lease.status();
    std::this_thread::sleep_for(kLeaseRetryPause);  // another device is syncing
  }
  return absl::UnavailableError(
      "another device kept the collection busy; try again later");
}

absl::Status Cycle::KeepLease() {
  if (fencing_token_ == 0) return AcquireLease();  // taken only once there is a push
  int64_t now = env_->NowMs();
  if (now < lease_expires_ms_ - static_cast<int64_t>(options_.lease_ttl_ms / 2)) {
    return absl::OkStatus();
  }
  absl::StatusOr<v1::Lease> renewed =
      c_.client->RenewLease(c_.collection_id, fencing_token_, options_.lease_ttl_ms);
  if (renewed.ok()) {
    lease_expires_ms_ = now + options_.lease_ttl_ms;
    return absl::OkStatus();
  }
  if (!absl::IsFailedPrecondition(renewed.status())) return renewed.status();
  // Lost while we worked (it ran out and another device took it): take it again. The
  // log stays linear anyway: our append still needs the current head.
  fencing_token_ = 0;
  return AcquireLease();
}

void Cycle::ReleaseLease() {
  if (fencing_token_ == 0) return;
  // A lease left behind expires by itself; there is nothing better to do on failure.
  (void)c_.client->ReleaseLease(c_.collection_id, fencing_token_);
  fencing_token_ = 0;
}

absl::Status Cycle::CheckMassDelete(const ItemMap& base, const ScanResult& scan) {
  if (options_.allow_mass_delete || base.empty()) return absl::OkStatus();
  const std::string hint =
      " Nothing was changed. If this is what you want, run `ferry sync "
      "--allow-mass-delete`.";
  if (!c_.connector->DataPresent()) {
    return absl::FailedPreconditionError(
        StrCat("the data of this collection is missing (an unmounted disk or a removed "
               "folder?), which would delete all ",
               base.size(), " items everywhere.", hint));
  }
  // Items gone from here, less items new here: a renamed folder deletes nothing.
  size_t gone = 0, fresh = 0;
  for (const auto& [id, item] : base) gone += scan.items.contains(id) ? 0 : 1;
  for (const auto& [id, item] : scan.items) fresh += base.contains(id) ? 0 : 1;
  size_t deletions = gone > fresh ? gone - fresh : 0;
  if (scan.items.empty()) {
    return absl::FailedPreconditionError(
        StrCat("the data of this collection is empty, which would delete all ",
               base.size(), " items everywhere.", hint));
  }
  if (base.size() >= kMassDeleteItemsMin &&
      static_cast<double>(deletions) > options_.mass_delete_fraction * base.size()) {
    return absl::FailedPreconditionError(StrCat("this sync would delete ", deletions,
                                                " of ", base.size(), " items everywhere.",
                                                hint));
  }
  return absl::OkStatus();
}

absl::StatusOr<Pulled> Cycle::Pull(const ItemMap& base, uint64_t cursor) {
  Pulled pulled;
  pulled.theirs = base;
  pulled.cursor = cursor;
  // Each page moves the cursor forward by at least one; the head bounds the loop.
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(v1::PullResponse page,
                           c_.client->Pull(c_.collection_id, pulled.cursor, 0));
    for (const v1::LogEntry& entry : page.entries()) {
      if (entry.seq() != pulled.cursor + 1) {
        return absl::DataLossError(
            StrCat("log gap: expected seq ", pulled.cursor + 1, ", got ", entry.seq()));
      }
      FERRY_ASSIGN_OR_RETURN(
          v1::Transaction tx,
          seal::OpenTransaction(*c_.key, c_.collection_id, entry.envelope()));
      for (const v1::Op& op : tx.ops()) {
        const std::string& id = engine::OpTarget(op);
        // A state this pull made and this op replaces (one put per item, as in a
        // first sync, keeps nothing).
        for (const std::string* left :
             {&id, op.has_move() ? &op.move().from_id() : nullptr}) {
          if (left == nullptr || !pulled.touched.contains(*left)) continue;
          auto state = pulled.theirs.find(*left);
          if (state != pulled.theirs.end()) {
            pulled.superseded[*left].push_back(state->second);
          }
        }
        FERRY_RETURN_IF_ERROR(engine::ApplyOp(op, &pulled.theirs));
        pulled.touched[id] = RemoteTouch{tx.hlc_time(), tx.device_id()};
        if (op.has_move()) {
          pulled.touched[op.move().from_id()] =
              RemoteTouch{tx.hlc_time(), tx.device_id()};
          // A chain a->b->c is one move a->c for this device.
          auto chained = pulled.moved_from.find(op.move().from_id());
          std::string origin =
              chained != pulled.moved_from.end() ? chained->second : op.move().from_id();
          if (chained != pulled.moved_from.end()) pulled.moved_from.erase(chained);
          pulled.moved_from[id] = origin;
        } else if (op.has_put() || op.has_delete_()) {
          pulled.moved_from.erase(id);
        }
      }
      pulled.hlc = std::max(pulled.hlc, tx.hlc_time());
      pulled.cursor = entry.seq();
      report_->pulled_transactions += 1;
      report_->pulled_bytes += entry.envelope().size();
    }
    report_->head_seq = page.head_seq();
    if (!page.more() || page.entries().empty()) break;
  }
  return pulled;
}

// Unchanged items share one object, so most comparisons end at the pointers.
bool SameOrBothAbsent(const v1::Item* a, const v1::Item* b) {
  if (a == b) return true;
  if (a == nullptr || b == nullptr) return false;
  return engine::SameItem(*a, *b);
}

// True when `item` is one of the states `id` went through, and left, in the pulled
// transactions.
bool WentThrough(const Pulled& pulled, const std::string& id, const v1::Item& item) {
  auto versions = pulled.superseded.find(id);
  if (versions == pulled.superseded.end()) return false;
  for (const ItemPtr& version : versions->second) {
    if (engine::SameItem(*version, item)) return true;
  }
  return false;
}

template <typename Map>
const v1::Item* Find(const Map& map, const std::string& id) {
  auto it = map.find(id);
  if (it == map.end()) return nullptr;
  if constexpr (std::is_same_v<typename Map::mapped_type, LocalItem>) {
    return it->second.item.get();
  } else {
    return it->second.get();
  }
}

MergePlan Cycle::Merge(const ItemMap& base, const ScanResult& scan,
                       const Pulled& pulled) {
  MergePlan plan;
  std::set<std::string> move_sources;  // local objects a remote move takes
  // Every id of the three sorted maps, in order, without building a set of them.
  std::vector<const std::string*> ids;
  ids.reserve(base.size());
  auto b_it = base.begin();
  auto o_it = scan.items.begin();
  auto t_it = pulled.theirs.begin();
  while (b_it != base.end() || o_it != scan.items.end() || t_it != pulled.theirs.end()) {
    const std::string* next = nullptr;
    if (b_it != base.end()) next = &b_it->first;
    if (o_it != scan.items.end() && (next == nullptr || o_it->first < *next)) {
      next = &o_it->first;
    }
    if (t_it != pulled.theirs.end() && (next == nullptr || t_it->first < *next)) {
      next = &t_it->first;
    }
    ids.push_back(next);
    std::string current = *next;
    if (b_it != base.end() && b_it->first == current) ++b_it;
    if (o_it != scan.items.end() && o_it->first == current) ++o_it;
    if (t_it != pulled.theirs.end() && t_it->first == current) ++t_it;
  }
  // True when `id` is absent here because this device refused it (see RunOnce).
  auto refused_here = [&](const std::string& id) {
    auto it = scan.items.find(id);
    return it != scan.items.end() && it->second.stamp == kRefusedStamp;
  };
  for (const std::string* id_ptr : ids) {
    const std::string& id = *id_ptr;
    const v1::Item* b = Find(base, id);
    const v1::Item* o = Find(scan.items, id);
    const v1::Item* t = Find(pulled.theirs, id);
    bool ours_changed = !SameOrBothAbsent(b, o);
    bool theirs_changed = !SameOrBothAbsent(b, t);
    // A local object equal to a state the log went through and left since our cursor
    // is not a local change: a sync wrote it here and was interrupted before it
    // recorded it in the shadow. Made theirs (later, or gone), it is neither a conflict
    // nor pushed back (crash_test, round 157 of 500: a spurious conflict copy).
    if (ours_changed && o != nullptr && !SameOrBothAbsent(o, t) &&
        WentThrough(pulled, id, *o)) {
      plan.actions.push_back(t == nullptr
                                 ? LocalAction{LocalAction::kDelete, id, "", nullptr}
                                 : LocalAction{LocalAction::kWrite, id, "", t});
      continue;
    }
    if (!theirs_changed) {
      if (ours_changed) {
        if (o != nullptr)
          plan.push[id] = *o;
        else
          plan.push_deletes.insert(id);
      }
      continue;
    }
    if (!ours_changed) {
      if (t == nullptr) {
        // An item this device refused was never written here: nothing to delete.
        if (!refused_here(id)) {
          plan.actions.push_back({LocalAction::kDelete, id, "", nullptr});
        }
      } else {
        // A move from an item refused here cannot be done locally: it is written.
        auto from = pulled.moved_from.find(id);
        bool movable =
            from != pulled.moved_from.end() && t != nullptr &&
            Find(pulled.theirs, from->second) == nullptr &&
            SameOrBothAbsent(Find(base, from->second), Find(scan.items, from->second)) &&
            Find(scan.items, from->second) != nullptr && !refused_here(from->second) &&
            o == nullptr &&
            // One local object moves once: when several remote moves left from one id
            // (it was put back and moved again), the later destinations are written.
            move_sources.insert(from->second).second;
        bool write = true;
        if (movable) {
          plan.actions.push_back({LocalAction::kMove, id, from->second, nullptr});
          v1::Item moved = *Find(base, from->second);
          moved.set_id(id);
          write = !engine::SameItem(moved, *t);
        }
        if (write) plan.actions.push_back({LocalAction::kWrite, id, "", t});
      }
      continue;
    }
    if (SameOrBothAbsent(o, t)) continue;
    MergeBothChanged(id, b, o, t, pulled, &plan);
  }
  // A local move done for a remote move replaces the delete of its source.
  std::set<std::string> moved_sources;
  for (const LocalAction& a : plan.actions) {
    if (a.kind == LocalAction::kMove) moved_sources.insert(a.from);
  }
  std::erase_if(plan.actions, [&](const LocalAction& a) {
    return a.kind == LocalAction::kDelete && moved_sources.contains(a.id);
  });
  // Writes and moves go parents first (ids are sorted), deletes children first, last.
  auto first_delete = std::stable_partition(
      plan.actions.begin(), plan.actions.end(),
      [](const LocalAction& a) { return a.kind != LocalAction::kDelete; });
  std::reverse(first_delete, plan.actions.end());
  return plan;
}

// Both sides changed `id` to different states. Nothing is lost: an edit beats a
// delete, and of two edits the later keeps the id while the other is kept beside it
// as a conflict copy, which syncs like any item.
void Cycle::MergeBothChanged(const std::string& id, const v1::Item* base,
                             const v1::Item* ours, const v1::Item* theirs,
                             const Pulled& pulled, MergePlan* plan) {
  static const RemoteTouch kNoTouch;
  auto touched = pulled.touched.find(id);
  const RemoteTouch& touch = touched != pulled.touched.end() ? touched->second : kNoTouch;
  if (ours != nullptr && theirs != nullptr && c_.connector->MergesFields()) {
    MergeFields(id, base, *ours, *theirs, touch, plan);
    return;
  }
  engine::ConflictRecord record;
  record.time_ms = env_->NowMs();
  record.item_id = id;
  if (ours == nullptr) {  // we deleted, they edited: theirs comes back
    record.kind = "edit/delete";
    record.detail =
        "deleted here, edited on device " + touch.device_id + ": the edit was kept";
    plan->actions.push_back({LocalAction::kWrite, id, "", theirs});
  } else if (theirs == nullptr) {  // they deleted, we edited: ours is pushed again
    record.kind = "edit/delete";
    record.detail =
        "edited here, deleted on device " + touch.device_id + ": the edit was kept";
    plan->push[id] = *ours;
  } else {
    int64_t ours_ms = c_.connector->EditTimeMs(*ours);
    int64_t theirs_ms = static_cast<int64_t>(touch.hlc >> 16);
    bool ours_wins = ours_ms > theirs_ms;
    const std::string& loser_device = ours_wins ? touch.device_id : c_.device_id;
    std::string copy_id = c_.connector->ConflictCopyId(id, loser_device.substr(0, 8),
                                                       ours_wins ? theirs_ms : ours_ms);
    record.kind = "edit/edit";
    record.kept_as = copy_id;
    record.detail =
        StrCat("edited here and on device ", touch.device_id, "; the ",
               ours_wins ? "local" : "remote", " edit is later and kept the name");
    if (ours_wins) {
      v1::Item copy = *theirs;
      copy.set_id(copy_id);
      plan->conflict_copies[copy_id] = copy;
      plan->push[copy_id] = copy;
      plan->push[id] = *ours;
    } else {
      // Ours moves aside under the copy's name and is pushed as a new item; theirs
      // takes the name.
      plan->actions.push_back({LocalAction::kMove, copy_id, id, nullptr});
      v1::Item copy = *ours;
      copy.set_id(copy_id);
      plan->push[copy_id] = copy;
      plan->actions.push_back({LocalAction::kWrite, id, "", theirs});
    }
  }
  plan->conflicts.push_back(std::move(record));
  report_->conflicts += 1;
}

// Both sides changed record `id`: merged field by field against the base. A field
// changed on one side takes that change; changed on both to different values, the
// connector may merge the two (revision stamps), else the later edit wins and the other
// value is kept in the conflict log; an edit beats a removal. The merged record is
// written here when it differs from ours and pushed when it differs from theirs.
void Cycle::MergeFields(const std::string& id, const v1::Item* base, const v1::Item& ours,
                        const v1::Item& theirs, const RemoteTouch& touch,
                        MergePlan* plan) {
  struct Sides {
    const v1::Field* base = nullptr;
    const v1::Field* ours = nullptr;
    const v1::Field* theirs = nullptr;
  };
  std::map<std::string_view, Sides> fields;
  if (base != nullptr) {
    for (const v1::Field& f : base->fields()) fields[f.name()].base = &f;
  }
  for (const v1::Field& f : ours.fields()) fields[f.name()].ours = &f;
  for (const v1::Field& f : theirs.fields()) fields[f.name()].theirs = &f;
  auto same = [](const v1::Field* a, const v1::Field* b) {
    if (a == nullptr || b == nullptr) return a == b;
    return engine::SameField(*a, *b);
  };
  auto text = [](const v1::Field* f) {
    return f == nullptr ? std::string() : f->has_content() ? "(content)" : f->bytes();
  };
  int64_t ours_ms = c_.connector->EditTimeMs(ours);
  int64_t theirs_ms = static_cast<int64_t>(touch.hlc >> 16);
  v1::Item merged;
  merged.set_id(id);
  for (const auto& [name, sides] : fields) {
    const v1::Field* take = nullptr;
    std::optional<v1::Field> resolved;
    if (same(sides.ours, sides.base)) {
      take = sides.theirs;
    } else if (same(sides.theirs, sides.base) || same(sides.ours, sides.theirs)) {
      take = sides.ours;
    } else if (sides.ours != nullptr && sides.theirs != nullptr &&
               (resolved =
                    c_.connector->MergeFieldValues(name, *sides.ours, *sides.theirs))) {
      take = &*resolved;
    } else {
      engine::ConflictRecord record;
      record.time_ms = env_->NowMs();
      record.item_id = id;
      record.field = std::string(name);
      const v1::Field* other = nullptr;
      if (sides.ours == nullptr || sides.theirs == nullptr) {
        take = sides.ours != nullptr ? sides.ours : sides.theirs;
        other = nullptr;
        record.kind = "field edit/delete";
        record.detail = StrCat(sides.ours == nullptr ? "removed here" : "edited here",
                               ", ", sides.ours == nullptr ? "edited" : "removed",
                               " on device ", touch.device_id, ": the edit was kept");
      } else {
        bool ours_wins = ours_ms > theirs_ms;
        take = ours_wins ? sides.ours : sides.theirs;
        other = ours_wins ? sides.theirs : sides.ours;
        record.kind = "field edit/edit";
        record.detail =
            StrCat("edited here and on device ", touch.device_id, "; the ",
                   ours_wins ? "local" : "remote", " edit is later and was kept");
      }
      record.kept_value = text(take);
      record.other_value = text(other);
      plan->conflicts.push_back(std::move(record));
      report_->conflicts += 1;
    }
    if (take != nullptr) *merged.add_fields() = *take;
  }
  const v1::Item* after = &theirs;
  if (!engine::SameItem(merged, theirs)) {
    v1::Item& pushed = plan->push[id] = std::move(merged);
    after = &pushed;
  }
  if (!engine::SameItem(*after, ours)) {
    plan->actions.push_back({LocalAction::kWrite, id, "", after});
  }
}

absl::Status Cycle::ApplyLocal(const MergePlan& plan, const ScanResult& scan,
                               StampMap* stamps, std::set<std::string>* deferred,
                               std::map<std::string, std::string>* refused) {
  engine::EngineChunkSource chunks(transfer_, scan.items);
  // The stamp each local object has now: as scanned, or as the last action left it
  // ("" = absent).
  auto local_stamp = [&](const std::string& id) -> std::string {
    auto s = stamps->find(id);
    if (s != stamps->end()) return s->second;
    auto it = scan.items.find(id);
    if (it == scan.items.end() || it->second.stamp == kRefusedStamp) return std::string();
    return it->second.stamp;
  };
  auto run = [&](const LocalAction& a) -> absl::StatusOr<std::string> {
    switch (a.kind) {
      case LocalAction::kWrite:
        return c_.connector->Apply(a.id, local_stamp(a.id), a.after, &chunks);
      case LocalAction::kDelete:
        return c_.connector->Apply(a.id, local_stamp(a.id), nullptr, &chunks);
      case LocalAction::kMove:
        return c_.connector->Move(a.from, local_stamp(a.from), a.id);
    }
    return absl::InternalError("unknown action");
  };
  // What one action's outcome means for the sync.
  auto settle = [&](const LocalAction& a, const absl::StatusOr<std::string>& stamp) {
    const bool refusal = absl::IsInvalidArgument(stamp.status()) ||
                         absl::IsFailedPrecondition(stamp.status()) ||
                         absl::IsPermissionDenied(stamp.status());
    // Changed locally during the sync: merged next time, never overwritten. So is a
    // refusal by an object that was not scanned (SyncOptions::assume_unchanged): it
    // may be a local change, which the refusal would record as the base.
    if (absl::IsAborted(stamp.status()) || (refusal && scanned_unchanged_)) {
      deferred->insert(a.id);
      if (a.kind == LocalAction::kMove) deferred->insert(a.from);
      report_->deferred.push_back(a.id);
      return absl::OkStatus();
    }
    if (refusal) {
      // This one item cannot be applied here (a hostile or invalid path, a symbolic
      // link or file in the way, a file or directory this process may not write):
      // refused and reported, the rest goes on; tried again at every sync.
      refused->emplace(a.id, local_stamp(a.id));
      report_->skipped.emplace_back(a.id, StrCat("refused: ", stamp.status().message()));
      return absl::OkStatus();
    }
    FERRY_RETURN_IF_ERROR(stamp.status());
    report_->pulled_items += 1;
    if (options_.progress && report_->pulled_items % kProgressEveryItems == 0) {
      options_.progress(*report_);
    }
    if (a.kind == LocalAction::kMove) (*stamps)[a.from] = "";
    (*stamps)[a.id] = *stamp;
    return absl::OkStatus();
  };
  // Runs of writes go to the connector as batches (one flush per batch), with their
  // chunks downloaded ahead in few large requests: the next batch's download, and the
  // opening of its chunks, run on another thread while this batch is written. Moves and
  // deletes go one by one.
  struct Batch {
    size_t start = 0, end = 0;
    std::vector<v1::ChunkRef> refs;
  };
  std::vector<Batch> batches;
  for (size_t i = 0; i < plan.actions.size();) {
    if (plan.actions[i].kind != LocalAction::kWrite) {
      ++i;
      continue;
    }
    Batch batch{i, i, {}};
    uint64_t bytes = 0;
    for (; batch.end < plan.actions.size() &&
           plan.actions[batch.end].kind == LocalAction::kWrite &&
           batch.end - batch.start < kApplyBatchItemsMax && bytes < kPrefetchBytesMax;
         ++batch.end) {
      for (const v1::Field& f : plan.actions[batch.end].after->fields()) {
        if (!f.has_content()) continue;
        for (const v1::ChunkRef& ref : f.content().chunks()) {
          batch.refs.push_back(ref);
          bytes += ref.size();
        }
      }
    }
    i = batch.end;
    batches.push_back(std::move(batch));
  }
  using Fetched = engine::EngineChunkSource::Fetched;
  auto fetch = [this](std::vector<v1::ChunkRef> wanted) {
    return std::async(std::launch::async, [this, wanted = std::move(wanted)] {
      return engine::EngineChunkSource::FetchAhead(transfer_, wanted);
    });
  };
  std::vector<v1::ChunkRef> next_wanted;
  std::future<absl::StatusOr<Fetched>> next;
  if (!batches.empty()) {
    next_wanted = chunks.Wanted(batches[0].refs);
    next = fetch(next_wanted);
  }
  size_t index = 0;
  for (size_t b = 0; b <= batches.size(); ++b) {
    size_t batch_start = b < batches.size() ? batches[b].start : plan.actions.size();
    for (; index < batch_start; ++index) {
      FERRY_RETURN_IF_ERROR(settle(plan.actions[index], run(plan.actions[index])));
    }
    if (b == batches.size()) break;
    const Batch& batch = batches[b];
    absl::StatusOr<Fetched> fetched = next.get();
    std::vector<v1::ChunkRef> wanted = std::move(next_wanted);
    if (b + 1 < batches.size()) {
      next_wanted = chunks.Wanted(batches[b + 1].refs);
      next = fetch(next_wanted);
    }
    FERRY_RETURN_IF_ERROR(fetched.status());
    FERRY_RETURN_IF_ERROR(chunks.Install(wanted, *std::move(fetched)));
    std::vector<Connector::ApplyRequest> requests;
    for (size_t i = batch.start; i < batch.end; ++i) {
      const LocalAction& w = plan.actions[i];
      requests.push_back({w.id, local_stamp(w.id), w.after});
    }
    std::vector<absl::StatusOr<std::string>> results =
        c_.connector->ApplyBatch(requests, &chunks);
    for (size_t i = 0; i < requests.size(); ++i) {
      FERRY_RETURN_IF_ERROR(settle(plan.actions[batch.start + i], results[i]));
    }
    index = batch.end;
  }
  for (const auto& [id, copy] : plan.conflict_copies) {
    absl::StatusOr<std::string> stamp = c_.connector->Apply(id, "", &copy, &chunks);
    if (absl::IsAborted(stamp.status())) {
      deferred->insert(id);
      continue;
    }
    FERRY_RETURN_IF_ERROR(stamp.status());
    report_->pulled_items += 1;
    (*stamps)[id] = *stamp;
  }
  return absl::OkStatus();
}

// Whether every stamp is one the connector gave: no item is refused here or waits to
// be pushed, so the shadow can stand for the local data (SyncOptions::assume_unchanged).
bool AllStampsPlain(const StampMap& stamps) {
  for (const auto& [id, stamp] : stamps) {
    if (stamp.empty() || stamp == kRefusedStamp || stamp == kRefusedDeleteStamp ||
        stamp.starts_with(kRefusedOverPrefix)) {
      return false;
    }
  }
  return true;
}

absl::Status Cycle::RunOnce(bool first, bool* again) {
  *again = false;
  ItemMap base;
  StampMap base_stamps;
  const bool may_skip_scan = first && options_.assume_unchanged;
  // The local walk runs while the shadow loads.
  if (!may_skip_scan) c_.connector->Prefetch();
  FERRY_RETURN_IF_ERROR(c_.shadow->Load(&base, &base_stamps));
  FERRY_ASSIGN_OR_RETURN(uint64_t cursor, c_.shadow->Cursor());
  FERRY_ASSIGN_OR_RETURN(uint64_t stored_hlc, c_.shadow->Hlc());
  hlc_ = std::max(hlc_, stored_hlc);

  scanned_unchanged_ = may_skip_scan && AllStampsPlain(base_stamps);
  FERRY_ASSIGN_OR_RETURN(
      ScanResult scan, scanned_unchanged_ ? c_.connector->ScanUnchanged(base, base_stamps)
                                          : c_.connector->Scan(base, base_stamps));
  // Items whose write was refused here, where the local object is still as it was
  // then (absent, or with the same stamp): not local edits (their version is in the
  // shadow; the object is what was there before it), so the write is tried again.
  std::set<std::string> refused_retry;
  for (const auto& [id, stamp] : base_stamps) {
    if (stamp == kRefusedStamp && !scan.items.contains(id)) {
      scan.items[id] = LocalItem{base.at(id), kRefusedStamp};  // absent by our refusal
      refused_retry.insert(id);
    } else if (stamp.starts_with(kRefusedOverPrefix)) {
      auto local = scan.items.find(id);
      if (local != scan.items.end() &&
          c_.connector->SameStamp(stamp.substr(std::strlen(kRefusedOverPrefix)),
                                  local->second.stamp)) {
        local->second.item = base.at(id);  // its stamp stays: the write checks it
        refused_retry.insert(id);
      }
    }
  }
  report_->scanned_items = scan.items.size();
  report_->scanned_bytes += scan.bytes_read;
  report_->skipped = scan.skipped;
  FERRY_RETURN_IF_ERROR(CheckMassDelete(base, scan));

  FERRY_ASSIGN_OR_RETURN(Pulled pulled, Pull(base, cursor));
  hlc_ = std::max(hlc_, pulled.hlc);
  MergePlan plan = Merge(base, scan, pulled);
  // Items refused earlier are tried again: what was in the way may be gone.
  std::set<std::string> planned;
  for (const LocalAction& a : plan.actions) planned.insert(a.id);
  for (const std::string& id : refused_retry) {
    auto theirs = pulled.theirs.find(id);
    if (planned.contains(id) || theirs == pulled.theirs.end()) continue;
    auto first_delete =
        std::find_if(plan.actions.begin(), plan.actions.end(),
                     [](const LocalAction& a) { return a.kind == LocalAction::kDelete; });
    plan.actions.insert(first_delete,
                        {LocalAction::kWrite, id, "", theirs->second.get()});
  }
  std::set<std::string> retried_deletes;
  for (const auto& [id, stamp] : base_stamps) {
    auto local = scan.items.find(id);
    // A remote op on it since (it was put back) makes the old delete moot.
    if (stamp != kRefusedDeleteStamp || planned.contains(id) ||
        pulled.touched.contains(id) || local == scan.items.end() ||
        !SameOrBothAbsent(local->second.item.get(), base.at(id).get())) {
      continue;  // changed here meanwhile: the merge pushes it (an edit beats a delete)
    }
    plan.actions.push_back({LocalAction::kDelete, id, "", nullptr});
    retried_deletes.insert(id);
  }

  // The conflict log first: a merged record written over a local edit keeps the
  // losing value only there, so it must be durable before the write (a crash between
  // the two lost it: simulation seed 300021).
  if (!plan.conflicts.empty()) {
    ShadowUpdate conflicts_only;
    conflicts_only.conflicts = plan.conflicts;
    FERRY_RETURN_IF_ERROR(c_.shadow->Commit(conflicts_only));
  }
  // Apply theirs locally, then fold the settled items and the cursor into the shadow.
  StampMap stamps;
  std::set<std::string> deferred;
  std::map<std::string, std::string> refused;  // id -> its local object's stamp
  FERRY_RETURN_IF_ERROR(ApplyLocal(plan, scan, &stamps, &deferred, &refused));
  if (!deferred.empty()) {
    // Something changed locally while we applied. Folding their changes in now would
    // hide them from the next merge, so the cycle runs again (the conflict log is
    // kept): what was applied shows up as converged, the rest merges properly.
    *again = true;
    return absl::OkStatus();
  }
  for (const std::string& id : retried_deletes) {
    if (!refused.contains(id)) pulled.theirs.erase(id);  // done at last
  }
  ShadowUpdate update;
  for (const auto& [id, item] : base) {
    if (pulled.theirs.contains(id)) continue;
    if (refused.contains(id)) {
      update.put.emplace_back(*item, kRefusedDeleteStamp);  // a delete we could not do
    } else {
      update.erase.push_back(id);
    }
  }
  for (const auto& [id, item] : pulled.theirs) {
    // Items we are about to push are not synced yet. When they changed remotely too,
    // the shadow takes their version (the ops we push are computed against it, and
    // the cursor moves past it) with no stamp, so that if the push does not happen
    // the next scan reads the local object again and finds our change still to push.
    if (plan.push.contains(id) || plan.push_deletes.contains(id)) {
      auto old_item = base.find(id);
      if (plan.push.contains(id) &&
          (old_item == base.end() || !engine::SameItem(*old_item->second, *item))) {
        update.put.emplace_back(*item, "");
      }
      continue;
    }
    auto applied = stamps.find(id);
    auto scanned = scan.items.find(id);
    std::string stamp = retried_deletes.contains(id)  ? std::string(kRefusedDeleteStamp)
                        : refused.contains(id)        ? RefusedStamp(refused.at(id))
                        : applied != stamps.end()     ? applied->second
                        : scanned != scan.items.end() ? scanned->second.stamp
                                                      : std::string();
    // Only what changed is written: a sync that changes nothing writes nothing.
    auto old_item = base.find(id);
    auto old_stamp = base_stamps.find(id);
    if (old_item != base.end() && old_stamp != base_stamps.end() &&
        old_stamp->second == stamp &&
        (old_item->second == item || engine::SameItem(*old_item->second, *item))) {
      continue;
    }
    update.put.emplace_back(*item, stamp);
  }
  update.cursor = pulled.cursor;
  update.hlc = hlc_;
  FERRY_RETURN_IF_ERROR(c_.shadow->Commit(update));

  std::vector<v1::Op> ops = MakeOps(plan, pulled.theirs);
  if (ops.empty()) return absl::OkStatus();
  // Conflict copies made by this merge are local items too, under their new ids.
  // Merged records were written here too: their stamp is the one the write left.
  std::map<std::string, LocalItem> local = scan.items;
  for (const auto& [id, item] : plan.push) {
    auto applied = stamps.find(id);
    if (!local.contains(id) || applied != stamps.end()) {
      local[id] = LocalItem{std::make_shared<const v1::Item>(item),
                            applied != stamps.end() ? applied->second : ""};
    }
  }
  return Push(std::move(ops), local, std::move(pulled.theirs), pulled.cursor, again);
}

// Our changes as ops against their state. A delete and a create of equal content
// become one move, so a rename costs no data.
std::vector<v1::Op> Cycle::MakeOps(const MergePlan& plan, const ItemMap& synced) {
  std::vector<v1::Op> ops;
  std::map<std::string, std::vector<std::string>> deleted_by_digest;
  auto digest_of = [](const v1::Item& item) -> std::string {
    for (const v1::Field& f : item.fields()) {
      if (f.has_content() && f.content().size() > 0) return f.content().digest();
    }
    return {};
  };
  for (const std::string& id : plan.push_deletes) {
    auto it = synced.find(id);
    if (it == synced.end()) continue;
    std::string digest = digest_of(*it->second);
    if (!digest.empty()) deleted_by_digest[digest].push_back(id);
  }
  std::set<std::string> moved;
  for (const auto& [id, target] : plan.push) {
    auto it = synced.find(id);
    if (it != synced.end()) {
      if (!engine::SameItem(*it->second, target))
        ops.push_back(engine::MakePatch(*it->second, target));
      continue;
    }
    auto candidates = deleted_by_digest.find(digest_of(target));
    if (candidates != deleted_by_digest.end() && !candidates->second.empty()) {
      std::string from = candidates->second.back();
      candidates->second.pop_back();
      moved.insert(from);
      ops.push_back(engine::MakeMove(from, id));
      v1::Item moved_item = *synced.at(from);
      moved_item.set_id(id);
      if (!engine::SameItem(moved_item, target))
        ops.push_back(engine::MakePatch(moved_item, target));
      continue;
    }
    ops.push_back(engine::MakePut(target));
  }
  for (const std::string& id : plan.push_deletes) {
    if (moved.contains(id) || !synced.contains(id)) continue;
    ops.push_back(engine::MakeDelete(id));
  }
  return ops;
}

// Folds a committed transaction into the shadow: only the items its ops touched.
absl::Status Cycle::CommitPushed(const v1::Transaction& tx, uint64_t seq,
                                 const std::map<std::string, LocalItem>& local,
                                 ItemMap* synced) {
  ItemMap& items = *synced;
  ShadowUpdate update;
  for (const v1::Op& op : tx.ops()) {
    FERRY_RETURN_IF_ERROR(engine::ApplyOp(op, &items));
    if (op.has_move()) update.erase.push_back(op.move().from_id());
  }
  for (const v1::Op& op : tx.ops()) {
    const std::string& id = engine::OpTarget(op);
    auto it = items.find(id);
    if (it == items.end()) {
      update.erase.push_back(id);
      continue;
    }
    auto scanned = local.find(id);
    update.put.emplace_back(*it->second,
                            scanned != local.end() ? scanned->second.stamp : "");
  }
  update.cursor = seq;
  update.intent = "";
  update.hlc = hlc_;
  return c_.shadow->Commit(update);
}

absl::Status Cycle::Push(std::vector<v1::Op> ops,
                         const std::map<std::string, LocalItem>& local, ItemMap synced,
                         uint64_t cursor, bool* again) {
  engine::TransferContext upload = transfer_;
  upload.synced = &synced;  // patches splice these: their old chunks are delta bases
  // Each transaction's chunks are uploaded right before it is appended, so that other
  // devices can pull the first transactions of a large push while the rest uploads.
  for (size_t next = 0; next < ops.size();) {
    std::vector<v1::Op> part;
    size_t bytes = 0;
    while (next < ops.size() && part.size() < kOpsPerTransactionMax &&
           (part.empty() || bytes < kTransactionBytesTarget)) {
      bytes += ops[next].ByteSizeLong();
      part.push_back(std::move(ops[next++]));
    }
    FERRY_RETURN_IF_ERROR(engine::UploadMissingChunks(upload, part, local));
    v1::Transaction tx;
    tx.set_tx_id(env_->RandomBytes(seal::kTxIdBytes));
    tx.set_device_id(c_.device_id);
    tx.set_base_seq(cursor);
    tx.set_hlc_time(NextHlc());
    for (v1::Op& op : part) *tx.add_ops() = std::move(op);
    FERRY_ASSIGN_OR_RETURN(std::string envelope,
                           seal::SealTransaction(*c_.key, c_.collection_id, tx, {}));
    ShadowUpdate intent;
    intent.intent = envelope;
    FERRY_RETURN_IF_ERROR(c_.shadow->Commit(intent));
    FERRY_RETURN_IF_ERROR(KeepLease());
    absl::StatusOr<v1::AppendResponse> appended =
        c_.client->Append(c_.collection_id, envelope, fencing_token_);
    if (absl::IsAborted(appended.status())) {
      ShadowUpdate clear;
      clear.intent = "";
      FERRY_RETURN_IF_ERROR(c_.shadow->Commit(clear));
      *again = true;  // another device appended first: pull, merge and try again
      return absl::OkStatus();
    }
    FERRY_RETURN_IF_ERROR(appended.status());
    FERRY_RETURN_IF_ERROR(CommitPushed(tx, appended->seq(), local, &synced));
    cursor = appended->seq();
    report_->pushed_transactions += 1;
    report_->pushed_items += static_cast<uint64_t>(tx.ops_size());
    report_->pushed_bytes += envelope.size();
    report_->head_seq = cursor;
    if (options_.progress) options_.progress(*report_);
  }
  return absl::OkStatus();
}

absl::Status Cycle::Run() {
  FERRY_RETURN_IF_ERROR(CheckConnector());
  // The lease is taken right before the first append (KeepLease), not here: a sync
  // with nothing to push (the common case) costs no lease round trips and keeps no
  // other device waiting. Appends are compare-and-append, so the log stays linear
  // either way; the lease only makes pushing devices take turns.
  absl::Status status = RecoverIntent();
  for (int cycle = 0; status.ok() && cycle < kCyclesMax; ++cycle) {
    bool again = false;
    status = RunOnce(/*first=*/cycle == 0, &again);
    if (status.ok() && !again) break;
    if (status.ok() && cycle + 1 == kCyclesMax) {
      status = absl::AbortedError("other devices kept appending; sync again");
    }
  }
  ReleaseLease();
  return status;
}

}  // namespace

absl::StatusOr<std::unique_ptr<files::RootDir>> Env::OpenRoot(const std::string& path) {
  return files::RootDir::Open(path);
}

Env* Env::Default() {
  static RealEnv* env = new RealEnv();
  return env;
}

absl::StatusOr<SyncReport> Sync(const EngineConfig& config, const SyncOptions& options) {
  if (config.key == nullptr || config.client == nullptr || config.connector == nullptr ||
      config.shadow == nullptr) {
    return absl::InvalidArgumentError("engine config is incomplete");
  }
  SyncReport report;
  Cycle cycle(config, options, &report);
  FERRY_RETURN_IF_ERROR(cycle.Run());
  return report;
}

}  // namespace ferry
