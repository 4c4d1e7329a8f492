#include "src/engine/transfer.h"

#include "gtest/gtest.h"

namespace ferry::engine {
namespace {

v1::ChunkRef Ref(const std::string& id, uint32_t size) {
  v1::ChunkRef ref;
  ref.set_id(id);
  ref.set_size(size);
  return ref;
}

// A file item whose content is chunks of `sizes`, named `prefix`0, `prefix`1, ...
ItemPtr FileItem(const std::string& prefix, const std::vector<uint32_t>& sizes) {
  auto item = std::make_shared<v1::Item>();
  item->set_id("f");
  v1::Field* field = item->add_fields();
  field->set_name("content");
  uint64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    *field->mutable_content()->add_chunks() = Ref(prefix + std::to_string(i), sizes[i]);
    total += sizes[i];
  }
  field->mutable_content()->set_size(total);
  return item;
}

std::map<std::string, std::string> BasesFor(const std::vector<uint32_t>& old_sizes,
                                            const std::vector<uint32_t>& new_sizes) {
  ItemMap synced;
  synced["f"] = FileItem("old", old_sizes);
  ItemPtr edited = FileItem("new", new_sizes);
  v1::Op op = MakePatch(*synced["f"], *edited);
  return DeltaBases(synced, {op});
}

TEST(DeltaBasesTest, EditsInPlacePairChunksByIndex) {
  auto bases = BasesFor({100, 100, 100}, {100, 100, 100});
  EXPECT_EQ(bases["new0"], "old0");
  EXPECT_EQ(bases["new1"], "old1");
  EXPECT_EQ(bases["new2"], "old2");
}

TEST(DeltaBasesTest, AVanishedBoundaryDoesNotShiftTheRest) {
  // Old chunks 0 and 1 became one new chunk: new chunk 1 is old chunk 2's bytes, not
  // old chunk 1's (pairing by index would give that, and every later pair be wrong).
  auto bases = BasesFor({100, 100, 100, 100}, {200, 100, 100});
  EXPECT_TRUE(bases["new0"] == "old0" || bases["new0"] == "old1");
  EXPECT_EQ(bases["new1"], "old2");
  EXPECT_EQ(bases["new2"], "old3");
}

TEST(DeltaBasesTest, ANewBoundaryDoesNotShiftTheRest) {
  auto bases = BasesFor({100, 100, 100}, {40, 60, 100, 100});
  EXPECT_EQ(bases["new0"], "old0");
  EXPECT_EQ(bases["new1"], "old0");
  EXPECT_EQ(bases["new2"], "old1");
  EXPECT_EQ(bases["new3"], "old2");
}

TEST(DeltaBasesTest, BytesInsertedAtTheStartLineUpTheEnds) {
  // 30 bytes more in front: from the start nothing lines up well; from the end every
  // chunk does.
  auto bases = BasesFor({100, 100, 100}, {130, 100, 100});
  EXPECT_EQ(bases["new1"], "old1");
  EXPECT_EQ(bases["new2"], "old2");
}

}  // namespace
}  // namespace ferry::engine
