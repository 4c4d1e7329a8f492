// Fuzzes what every device does with a transaction it opened: the bytes are parsed as
// a Transaction and every op is applied to an item map with engine::ApplyOp, as the
// engine applies a pulled log. Then, for pairs of the resulting items, MakePatch must
// round-trip: applying MakePatch(a, b) to a gives b.
//
// Invariants (abort on violation): a put leaves exactly its item under its id, a
// delete leaves nothing, a move leaves nothing at its source (unless the source is
// the destination) and the item, renamed, at its destination; a failed op leaves the
// map unchanged; the round trip holds for every pair of well-formed items (unique
// field names, content sizes the sum of their chunk sizes).
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "proto/ferry/v1/change.pb.h"
#include "src/core/limits.h"
#include "src/engine/items.h"

namespace {

using ferry::engine::ItemMap;

// Items compared in the round trip, at most: pairs grow with the square.
constexpr size_t kRoundTripItemsMax = 12;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool WellFormed(const ferry::v1::Item& item) {
  std::set<std::string> names;
  for (const ferry::v1::Field& f : item.fields()) {
    if (!names.insert(f.name()).second) return false;
    if (!f.has_content()) continue;
    uint64_t size = 0;
    for (const ferry::v1::ChunkRef& ref : f.content().chunks()) size += ref.size();
    if (size != f.content().size()) return false;
  }
  return true;
}

void CheckOp(const ferry::v1::Op& op, const ItemMap& before, const ItemMap& after,
             const absl::Status& status) {
  using ferry::v1::Op;
  if (!status.ok()) {
    Check(before == after);  // same pointers: nothing replaced
    return;
  }
  switch (op.op_case()) {
    case Op::kPut: {
      auto it = after.find(op.put().item().id());
      Check(it != after.end() &&
            it->second->SerializeAsString() == op.put().item().SerializeAsString());
      Check(after.size() ==
            before.size() + (before.contains(op.put().item().id()) ? 0 : 1));
      break;
    }
    case Op::kDelete:
      Check(!after.contains(op.delete_().id()));
      break;
    case Op::kMove: {
      const std::string& from = op.move().from_id();
      const std::string& to = op.move().to_id();
      auto it = after.find(to);
      Check(it != after.end() && it->second->id() == to);
      Check(from == to || !after.contains(from));
      Check(it->second->fields_size() == before.at(from)->fields_size());
      break;
    }
    case Op::kPatch: {
      auto it = after.find(op.patch().id());
      Check(it != after.end() && it->second->id() == op.patch().id());
      for (const std::string& name : op.patch().unset()) {
        bool set_again = false;
        for (const ferry::v1::Field& f : op.patch().set()) set_again |= f.name() == name;
        Check(set_again || ferry::engine::FindField(*it->second, name) == nullptr);
      }
      break;
    }
    case Op::OP_NOT_SET:
      Check(false);  // ApplyOp refuses an op it does not know
  }
}

void RoundTrip(const ferry::v1::Item& a, ferry::v1::Item b) {
  b.set_id(a.id());
  if (!WellFormed(a) || !WellFormed(b) || ferry::engine::SameItem(a, b)) return;
  ferry::v1::Op patch = ferry::engine::MakePatch(a, b);
  ItemMap items;
  items[a.id()] = std::make_shared<const ferry::v1::Item>(a);
  absl::Status status = ferry::engine::ApplyOp(patch, &items);
  Check(status.ok());
  Check(ferry::engine::SameItem(*items.at(a.id()), b));
  // And the patch survives the wire.
  ferry::v1::Op copy;
  Check(copy.ParseFromString(patch.SerializeAsString()));
  ItemMap again;
  again[a.id()] = std::make_shared<const ferry::v1::Item>(a);
  Check(ferry::engine::ApplyOp(copy, &again).ok());
  Check(ferry::engine::SameItem(*again.at(a.id()), b));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ferry::v1::Transaction tx;
  if (!tx.ParseFromArray(data, static_cast<int>(size))) return 0;
  if (static_cast<size_t>(tx.ops_size()) > ferry::kTransactionOpsMax) return 0;
  ItemMap items;
  std::vector<ferry::v1::Item> seen;
  for (const ferry::v1::Op& op : tx.ops()) {
    ItemMap before = items;
    absl::Status status = ferry::engine::ApplyOp(op, &items);
    CheckOp(op, before, items, status);
    if (status.ok() && !ferry::engine::OpTarget(op).empty() &&
        seen.size() < kRoundTripItemsMax) {
      auto it = items.find(ferry::engine::OpTarget(op));
      if (it != items.end()) seen.push_back(*it->second);
    }
  }
  for (const ferry::v1::Item& a : seen) {
    for (const ferry::v1::Item& b : seen) RoundTrip(a, b);
  }
  return 0;
}
