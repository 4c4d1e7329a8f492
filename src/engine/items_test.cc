#include "src/engine/items.h"

#include "gtest/gtest.h"

namespace ferry::engine {
namespace {

v1::ChunkRef Ref(char c, uint32_t size = 10) {
  v1::ChunkRef ref;
  ref.set_id(std::string(32, c));
  ref.set_size(size);
  return ref;
}

v1::Item FileItem(const std::string& id, const std::string& chunks,
                  const std::string& digest) {
  v1::Item item;
  item.set_id(id);
  SetBytesField(&item, "mode", "644");
  v1::Field content;
  content.set_name("content");
  uint64_t size = 0;
  for (char c : chunks) {
    *content.mutable_content()->add_chunks() = Ref(c);
    size += 10;
  }
  content.mutable_content()->set_size(size);
  content.mutable_content()->set_digest(digest);
  SetField(&item, content);
  return item;
}

TEST(ItemsTest, FieldsAreSortedAndReplaced) {
  v1::Item item;
  SetBytesField(&item, "b", "1");
  SetBytesField(&item, "a", "2");
  SetBytesField(&item, "b", "3");
  ASSERT_EQ(item.fields_size(), 2);
  EXPECT_EQ(item.fields(0).name(), "a");
  EXPECT_EQ(BytesField(item, "b"), "3");
  EXPECT_EQ(BytesField(item, "missing"), "");
}

TEST(ItemsTest, SameItemIgnoresFieldOrderAndChunking) {
  v1::Item a = FileItem("x", "abc", "d1");
  v1::Item b = FileItem("x", "ab", "d1");
  b.mutable_fields()->at(0).mutable_content()->set_size(30);
  EXPECT_TRUE(SameItem(a, b));  // same size and digest: same content
  v1::Item c = FileItem("x", "abc", "d2");
  EXPECT_FALSE(SameItem(a, c));
  SetBytesField(&c, "extra", "1");
  EXPECT_FALSE(SameItem(a, c));
}

TEST(ItemsTest, PatchSplicesOnlyTheChangedMiddle) {
  v1::Item base = FileItem("f", "abcdefgh", "d1");
  v1::Item target = FileItem("f", "abcXYfgh", "d2");
  SetBytesField(&target, "mode", "600");
  v1::Op op = MakePatch(base, target);
  ASSERT_TRUE(op.has_patch());
  ASSERT_EQ(op.patch().splice_size(), 1);
  const v1::Splice& splice = op.patch().splice(0).splices(0);
  EXPECT_EQ(splice.index(), 3u);
  EXPECT_EQ(splice.remove(), 2u);
  EXPECT_EQ(splice.insert_size(), 2);
  EXPECT_EQ(op.patch().set_size(), 1);  // mode
  ItemMap items{{"f", std::make_shared<const v1::Item>(base)}};
  ASSERT_TRUE(ApplyOp(op, &items).ok());
  EXPECT_TRUE(SameItem(*items["f"], target));
  EXPECT_EQ(items["f"]->fields(0).content().chunks(4).id(), std::string(32, 'Y'));
  EXPECT_EQ(base.fields(0).content().chunks(4).id(),
            std::string(32, 'e'));  // not changed
}

TEST(ItemsTest, InsertAtStartCostsOneRef) {
  v1::Item base = FileItem("f", "bcdefgh", "d1");
  v1::Item target = FileItem("f", "Abcdefgh", "d2");
  v1::Op op = MakePatch(base, target);
  EXPECT_EQ(op.patch().splice(0).splices(0).insert_size(), 1);
  ItemMap items{{"f", std::make_shared<const v1::Item>(base)}};
  ASSERT_TRUE(ApplyOp(op, &items).ok());
  EXPECT_EQ(items["f"]->fields(0).content().chunks_size(), 8);
}

TEST(ItemsTest, UnsetRemovesFields) {
  v1::Item base = FileItem("f", "a", "d");
  SetBytesField(&base, "target", "x");
  v1::Item target = FileItem("f", "a", "d");
  v1::Op op = MakePatch(base, target);
  ASSERT_EQ(op.patch().unset_size(), 1);
  ItemMap items{{"f", std::make_shared<const v1::Item>(base)}};
  ASSERT_TRUE(ApplyOp(op, &items).ok());
  EXPECT_EQ(FindField(*items["f"], "target"), nullptr);
}

TEST(ItemsTest, MoveDeleteAndErrors) {
  ItemMap items{{"a", std::make_shared<const v1::Item>(FileItem("a", "x", "d"))}};
  ASSERT_TRUE(ApplyOp(MakeMove("a", "b"), &items).ok());
  ASSERT_EQ(items.count("a"), 0u);
  EXPECT_EQ(items["b"]->id(), "b");
  ASSERT_TRUE(ApplyOp(MakeDelete("b"), &items).ok());
  EXPECT_TRUE(items.empty());
  EXPECT_TRUE(absl::IsDataLoss(ApplyOp(MakeMove("a", "b"), &items)));
  v1::Op bad = MakePatch(FileItem("z", "ab", "1"), FileItem("z", "ac", "2"));
  items["z"] = std::make_shared<const v1::Item>(FileItem("z", "a", "1"));  // too short
  EXPECT_TRUE(absl::IsDataLoss(ApplyOp(bad, &items)));
  EXPECT_TRUE(absl::IsDataLoss(ApplyOp(v1::Op(), &items)));
}

// Splice indexes are any uint32 from a peer: a sum past INT_MAX must not wrap into a
// splice that "fits" (found with fuzz/transaction_fuzz.cc's invariants).
TEST(ItemsTest, HugeSpliceIndexesDoNotFit) {
  for (uint32_t index : {0x7fffffffu, 0x80000000u, 0xffffffffu}) {
    for (uint32_t remove : {1u, 0x7fffffffu, 0xffffffffu}) {
      ItemMap items{{"a", std::make_shared<const v1::Item>(FileItem("a", "xy", "d"))}};
      v1::Op op;
      op.mutable_patch()->set_id("a");
      v1::ContentPatch* patch = op.mutable_patch()->add_splice();
      patch->set_field("content");
      patch->set_size(20);
      v1::Splice* splice = patch->add_splices();
      splice->set_index(index);
      splice->set_remove(remove);
      EXPECT_TRUE(absl::IsDataLoss(ApplyOp(op, &items))) << index << " " << remove;
      EXPECT_EQ(items.at("a")->fields(0).content().chunks_size(), 2);
    }
  }
}

}  // namespace
}  // namespace ferry::engine
