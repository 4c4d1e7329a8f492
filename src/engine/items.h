// Items in memory: field lookup, equality, the ops between two versions of a
// collection, and applying ops. Pure functions over the universal format; every kind
// of data shares them.
#ifndef FERRY_ENGINE_ITEMS_H_
#define FERRY_ENGINE_ITEMS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "include/ferry/connector.h"
#include "proto/ferry/v1/change.pb.h"

namespace ferry::engine {

// A collection's items by id. Ordered, so that ops come out in a stable order. The items
// are shared (copy-on-write): copying a map copies pointers.
using ItemMap = std::map<std::string, ItemPtr>;

// The field named `name`, or nullptr.
const v1::Field* FindField(const v1::Item& item, std::string_view name);
// Sets (adds or replaces) a field; keeps fields sorted by name.
void SetField(v1::Item* item, v1::Field field);
void SetBytesField(v1::Item* item, std::string_view name, std::string_view value);
// The bytes of a bytes field, or "" when absent or content.
std::string BytesField(const v1::Item& item, std::string_view name);

// Same value: bytes equal, or content with equal size and digest (chunk lists of equal
// content are not compared: equal content is equal whatever its chunking).
bool SameField(const v1::Field& a, const v1::Field& b);
// Same id and the same fields by name (order of fields does not matter).
bool SameItem(const v1::Item& a, const v1::Item& b);

// The op that turns `base` into `target` (same id): a patch with the fields set and
// unset, content fields spliced against the base's chunk list. REQUIRES: !SameItem.
v1::Op MakePatch(const v1::Item& base, const v1::Item& target);
v1::Op MakePut(const v1::Item& item);
v1::Op MakeDelete(std::string_view id);
v1::Op MakeMove(std::string_view from, std::string_view to);

// Applies one op to `items`, replacing (never changing) the items it touches. A patch or
// move of an absent item, or a splice that does not fit its base, is DATA_LOSS: the log
// and the shadow disagree.
absl::Status ApplyOp(const v1::Op& op, ItemMap* items);

// The id an op is about (for a move: its destination).
const std::string& OpTarget(const v1::Op& op);

}  // namespace ferry::engine

#endif  // FERRY_ENGINE_ITEMS_H_
