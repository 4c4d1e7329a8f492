#include "src/engine/items.h"

#include <algorithm>
#include <cassert>

#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::engine {
namespace {

bool SameChunks(const v1::ContentRef& a, const v1::ContentRef& b) {
  if (a.chunks_size() != b.chunks_size()) return false;
  for (int i = 0; i < a.chunks_size(); ++i) {
    if (a.chunks(i).id() != b.chunks(i).id()) return false;
  }
  return true;
}

// One splice that replaces the middle of `base` between the common prefix and the
// common suffix with the middle of `target`. Edits at one place (an insert at the
// start, an append, an overwrite in the middle) cost a few chunk refs.
v1::ContentPatch SpliceContent(std::string_view name, const v1::ContentRef& base,
                               const v1::ContentRef& target) {
  int b = base.chunks_size(), t = target.chunks_size();
  int prefix = 0;
  while (prefix < b && prefix < t &&
         base.chunks(prefix).id() == target.chunks(prefix).id()) {
    ++prefix;
  }
  int suffix = 0;
  while (suffix < b - prefix && suffix < t - prefix &&
         base.chunks(b - 1 - suffix).id() == target.chunks(t - 1 - suffix).id()) {
    ++suffix;
  }
  v1::ContentPatch patch;
  patch.set_field(std::string(name));
  patch.set_size(target.size());
  patch.set_digest(target.digest());
  v1::Splice* splice = patch.add_splices();
  splice->set_index(static_cast<uint32_t>(prefix));
  splice->set_remove(static_cast<uint32_t>(b - prefix - suffix));
  for (int i = prefix; i < t - suffix; ++i) *splice->add_insert() = target.chunks(i);
  return patch;
}

absl::Status ApplySplices(const v1::ContentPatch& patch, v1::ContentRef* content) {
  std::vector<v1::ChunkRef> out;
  // In 64 bits: index and remove are any uint32 from a peer, and their sum must not
  // wrap (it once did, in int, and the copy below then read past the base list).
  int64_t next = 0;  // the first base chunk not yet copied
  const int64_t base_size = content->chunks_size();
  for (const v1::Splice& splice : patch.splices()) {
    const int64_t index = splice.index();
    const int64_t remove = splice.remove();
    if (index < next || index + remove > base_size) {
      return absl::DataLossError(
          StrCat("splice of '", patch.field(), "' does not fit its base"));
    }
    for (; next < index; ++next) out.push_back(content->chunks(static_cast<int>(next)));
    for (const v1::ChunkRef& ref : splice.insert()) out.push_back(ref);
    next = index + remove;
    assert(next <= base_size);
  }
  for (; next < base_size; ++next) out.push_back(content->chunks(static_cast<int>(next)));
  uint64_t size = 0;
  for (const v1::ChunkRef& ref : out) size += ref.size();
  if (size != patch.size()) {
    return absl::DataLossError(StrCat("spliced '", patch.field(), "' has ", size,
                                      " bytes, the patch says ", patch.size()));
  }
  content->clear_chunks();
  for (v1::ChunkRef& ref : out) *content->add_chunks() = std::move(ref);
  content->set_size(patch.size());
  content->set_digest(patch.digest());
  return absl::OkStatus();
}

absl::Status ApplyPatch(const v1::PatchOp& patch, v1::Item* item) {
  for (const std::string& name : patch.unset()) {
    auto* fields = item->mutable_fields();
    fields->erase(std::remove_if(fields->begin(), fields->end(),
                                 [&](const v1::Field& f) { return f.name() == name; }),
                  fields->end());
  }
  for (const v1::Field& field : patch.set()) SetField(item, field);
  for (const v1::ContentPatch& splice : patch.splice()) {
    v1::Field* field = nullptr;
    for (v1::Field& f : *item->mutable_fields()) {
      if (f.name() == splice.field()) field = &f;
    }
    if (field == nullptr || !field->has_content()) {
      return absl::DataLossError(StrCat("splice of '", splice.field(), "' in ",
                                        item->id(), ": no such content"));
    }
    FERRY_RETURN_IF_ERROR(ApplySplices(splice, field->mutable_content()));
  }
  return absl::OkStatus();
}

}  // namespace

const v1::Field* FindField(const v1::Item& item, std::string_view name) {
  for (const v1::Field& f : item.fields()) {
    if (f.name() == name) return &f;
  }
  return nullptr;
}

void SetField(v1::Item* item, v1::Field field) {
  auto* fields = item->mutable_fields();
  for (v1::Field& f : *fields) {
    if (f.name() == field.name()) {
      f = std::move(field);
      return;
    }
  }
  *item->add_fields() = std::move(field);
  std::sort(fields->begin(), fields->end(),
            [](const v1::Field& a, const v1::Field& b) { return a.name() < b.name(); });
}

void SetBytesField(v1::Item* item, std::string_view name, std::string_view value) {
  v1::Field field;
  field.set_name(std::string(name));
  field.set_bytes(std::string(value));
  SetField(item, std::move(field));
}

std::string BytesField(const v1::Item& item, std::string_view name) {
  const v1::Field* f = FindField(item, name);
  return f != nullptr && f->has_bytes() ? f->bytes() : std::string();
}

bool SameField(const v1::Field& a, const v1::Field& b) {
  if (a.name() != b.name() || a.value_case() != b.value_case()) return false;
  if (a.has_content()) {
    return a.content().size() == b.content().size() &&
           a.content().digest() == b.content().digest();
  }
  return a.bytes() == b.bytes();
}

bool SameItem(const v1::Item& a, const v1::Item& b) {
  if (a.id() != b.id() || a.fields_size() != b.fields_size()) return false;
  for (const v1::Field& f : a.fields()) {
    const v1::Field* g = FindField(b, f.name());
    if (g == nullptr || !SameField(f, *g)) return false;
  }
  return true;
}

v1::Op MakePatch(const v1::Item& base, const v1::Item& target) {
  assert(base.id() == target.id());
  v1::Op op;
  v1::PatchOp* patch = op.mutable_patch();
  patch->set_id(target.id());
  for (const v1::Field& f : base.fields()) {
    if (FindField(target, f.name()) == nullptr) patch->add_unset(f.name());
  }
  for (const v1::Field& f : target.fields()) {
    const v1::Field* old = FindField(base, f.name());
    if (old != nullptr && SameField(*old, f) &&
        (!f.has_content() || SameChunks(old->content(), f.content()))) {
      continue;
    }
    if (old != nullptr && old->has_content() && f.has_content()) {
      *patch->add_splice() = SpliceContent(f.name(), old->content(), f.content());
    } else {
      *patch->add_set() = f;
    }
  }
  return op;
}

v1::Op MakePut(const v1::Item& item) {
  v1::Op op;
  *op.mutable_put()->mutable_item() = item;
  return op;
}

v1::Op MakeDelete(std::string_view id) {
  v1::Op op;
  op.mutable_delete_()->set_id(std::string(id));
  return op;
}

v1::Op MakeMove(std::string_view from, std::string_view to) {
  v1::Op op;
  op.mutable_move()->set_from_id(std::string(from));
  op.mutable_move()->set_to_id(std::string(to));
  return op;
}

absl::Status ApplyOp(const v1::Op& op, ItemMap* items) {
  switch (op.op_case()) {
    case v1::Op::kPut:
      (*items)[op.put().item().id()] = std::make_shared<const v1::Item>(op.put().item());
      return absl::OkStatus();
    case v1::Op::kPatch: {
      auto it = items->find(op.patch().id());
      if (it == items->end()) {
        return absl::DataLossError(StrCat("patch of absent item ", op.patch().id()));
      }
      auto patched = std::make_shared<v1::Item>(*it->second);
      FERRY_RETURN_IF_ERROR(ApplyPatch(op.patch(), patched.get()));
      it->second = std::move(patched);
      return absl::OkStatus();
    }
    case v1::Op::kDelete:
      items->erase(op.delete_().id());
      return absl::OkStatus();
    case v1::Op::kMove: {
      auto it = items->find(op.move().from_id());
      if (it == items->end()) {
        return absl::DataLossError(StrCat("move of absent item ", op.move().from_id()));
      }
      auto moved = std::make_shared<v1::Item>(*it->second);
      items->erase(it);
      moved->set_id(op.move().to_id());
      (*items)[op.move().to_id()] = std::move(moved);
      return absl::OkStatus();
    }
    case v1::Op::OP_NOT_SET:
      break;
  }
  return absl::DataLossError("an op of a kind this version does not know");
}

const std::string& OpTarget(const v1::Op& op) {
  switch (op.op_case()) {
    case v1::Op::kPut:
      return op.put().item().id();
    case v1::Op::kPatch:
      return op.patch().id();
    case v1::Op::kDelete:
      return op.delete_().id();
    case v1::Op::kMove:
      return op.move().to_id();
    case v1::Op::OP_NOT_SET:
      break;
  }
  static const std::string kEmpty;
  return kEmpty;
}

}  // namespace ferry::engine
