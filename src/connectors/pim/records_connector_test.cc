#include "src/connectors/pim/records_connector.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/connectors/files/mem_env.h"
#include "src/connectors/files/mem_file_system.h"
#include "src/connectors/files/root_dir.h"

namespace ferry::pim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAlice[] =
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:alice\r\nFN:Alice\r\nX-KEPT:as it was\r\n"
    "END:VCARD\r\n";
constexpr char kNoUid[] = "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Nobody\r\nEND:VCARD\r\n";

// A clock the test moves.
class FakeEnv final : public Env {
 public:
  int64_t NowMs() override { return now_ms; }
  std::string RandomBytes(size_t n) override { return Env::Default()->RandomBytes(n); }
  int64_t now_ms = 1'700'000'000'000;
};

// Every case runs on a vdir folder on disk and on one in a MemFileSystem.
class RecordsConnectorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (disk()) {
      char pattern[] = "/tmp/ferry-records-XXXXXX";
      ASSERT_NE(::mkdtemp(pattern), nullptr);
      root_ = pattern;
    } else {
      root_ = "/contacts";
      ASSERT_TRUE(mem_.Mkdir(root_).ok());
    }
    WriteRaw("alice.vcf", kAlice);
    WriteRaw("nouid.vcf", kNoUid);
    WriteRaw("broken.vcf", "BEGIN:VCARD\r\nthis is not a card\r\n");
    WriteRaw("notes.txt", "not a card, not looked at");
  }
  void TearDown() override {
    if (disk()) fs::remove_all(root_);
  }
  bool disk() const { return GetParam() == "disk"; }
  std::string P(const std::string& name) const { return root_ + "/" + name; }

  void WriteRaw(const std::string& name, std::string_view data) {
    if (disk()) {
      std::ofstream(P(name), std::ios::binary) << data;
    } else {
      ASSERT_TRUE(mem_.WriteFile(P(name), data).ok());
    }
  }
  // The file's text; "<absent>" when it does not exist.
  std::string ReadRaw(const std::string& name) {
    if (!disk()) {
      absl::StatusOr<std::string> data = mem_.ReadFile(P(name));
      return data.ok() ? *data : "<absent>";
    }
    if (!fs::exists(P(name))) return "<absent>";
    std::ifstream in(P(name), std::ios::binary);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
  }
  std::unique_ptr<RecordsConnector> Make() {
    RecordsOptions options;
    options.root = root_;
    options.kind = RecordKind::kContact;
    options.env = disk() ? nullptr : &env_;
    return std::make_unique<RecordsConnector>(options);
  }

  std::string root_;
  files::MemFileSystem mem_;
  files::MemFsEnv env_{&mem_};
};

INSTANTIATE_TEST_SUITE_P(Both, RecordsConnectorTest, ::testing::Values("disk", "mem"),
                         [](const auto& test) { return test.param; });

std::string Field(const v1::Item& item, const std::string& name) {
  for (const v1::Field& f : item.fields()) {
    if (f.name() == name) return f.bytes();
  }
  return "<none>";
}

v1::Item WithField(v1::Item item, const std::string& name, const std::string& value) {
  for (v1::Field& f : *item.mutable_fields()) {
    if (f.name() == name) {
      f.set_bytes(value);
      return item;
    }
  }
  v1::Field* f = item.add_fields();
  f->set_name(name);
  f->set_bytes(value);
  return item;
}

// A version 4.0 card with UID `uid` and one more field.
v1::Item Card(const std::string& uid, const std::string& name, const std::string& value) {
  v1::Item card;
  card.set_id(uid);
  card = WithField(card, "VCARD", "");
  card = WithField(card, "VCARD/VERSION", "VERSION:4.0");
  card = WithField(card, "VCARD/UID", "UID:" + uid);
  return WithField(card, name, value);
}

TEST_P(RecordsConnectorTest, ScanFindsRecordsByUidAndSkipsBrokenFiles) {
  auto connector = Make();
  EXPECT_TRUE(connector->DataPresent());
  auto scan = connector->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_EQ(scan->items.size(), 2u);
  EXPECT_EQ(Field(*scan->items["alice"].item, "VCARD/FN"), "FN:Alice");
  EXPECT_EQ(Field(*scan->items["file:nouid"].item, "VCARD/FN"), "FN:Nobody");
  ASSERT_EQ(scan->skipped.size(), 1u);
  EXPECT_EQ(scan->skipped[0].first, "broken.vcf");
}

TEST_P(RecordsConnectorTest, ApplyRewritesCreatesAndDeletes) {
  auto connector = Make();
  auto scan = connector->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  const LocalItem alice = scan->items["alice"];

  v1::Item renamed = WithField(*alice.item, "VCARD/FN", "FN:Alicia");
  auto stamp = connector->Apply("alice", alice.stamp, &renamed, nullptr);
  ASSERT_TRUE(stamp.ok()) << stamp.status();
  EXPECT_THAT(ReadRaw("alice.vcf"), HasSubstr("FN:Alicia\r\n"));
  EXPECT_THAT(ReadRaw("alice.vcf"), HasSubstr("X-KEPT:as it was\r\n"));

  v1::Item bob =
      WithField(WithField(*alice.item, "VCARD/UID", "UID:bob"), "VCARD/FN", "FN:Bob");
  bob.set_id("bob");
  ASSERT_TRUE(connector->Apply("bob", "", &bob, nullptr).ok());
  EXPECT_THAT(ReadRaw("bob.vcf"), HasSubstr("FN:Bob"));

  EXPECT_TRUE(connector->Apply("alice", *stamp, nullptr, nullptr).ok());
  EXPECT_EQ(ReadRaw("alice.vcf"), "<absent>");
  EXPECT_FALSE(connector->Apply("file:broken", "", &bob, nullptr).ok());
}

TEST_P(RecordsConnectorTest, ChangeSinceScanIsAbortedAndBrokenFilesAreLeftAlone) {
  auto connector = Make();
  auto scan = connector->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  const LocalItem alice = scan->items["alice"];
  std::string edited = kAlice;
  edited.replace(edited.find("FN:Alice"), 8, "FN:Alice Edited");
  WriteRaw("alice.vcf", edited);
  v1::Item theirs = WithField(*alice.item, "VCARD/FN", "FN:Theirs");
  auto result = connector->Apply("alice", alice.stamp, &theirs, nullptr);
  EXPECT_TRUE(absl::IsAborted(result.status())) << result.status();
  EXPECT_EQ(ReadRaw("alice.vcf"), edited);
  EXPECT_THAT(ReadRaw("broken.vcf"), Not(HasSubstr("VERSION")));
}

// The in-memory file system and a fake clock: the connector's "now" is the Env's.
TEST(RecordsConnectorEnvTest, TimeComesFromTheEnv) {
  FakeEnv clock;
  files::MemFileSystem mem([&] { return clock.now_ms * 1'000'000; });
  files::MemFsEnv env(&mem, &clock);
  ASSERT_TRUE(mem.WriteFile("/c/.ferry-tmp-0123456789abcdef", "left by a crash").ok());
  RecordsOptions options;
  options.root = "/c";
  options.env = &env;
  RecordsConnector connector(options);

  clock.now_ms += 30 * 60 * 1000;  // half an hour later: kept
  ASSERT_TRUE(connector.Scan({}, {}).ok());
  EXPECT_EQ(mem.List("/c")->size(), 1u);
  clock.now_ms += 60 * 60 * 1000;  // older than an hour: removed
  ASSERT_TRUE(connector.Scan({}, {}).ok());
  EXPECT_TRUE(mem.List("/c")->empty());

  v1::Item card = Card("carol", "VCARD/FN", "FN:Carol");
  ASSERT_TRUE(connector.Apply("carol", "", &card, nullptr).ok());
  auto stat = mem.Stat("/c/carol.vcf");
  ASSERT_TRUE(stat.ok() && stat->has_value());
  EXPECT_EQ((*stat)->mtime_ns, clock.now_ms * 1'000'000);
}

// With the folder's lock held (src/client/collections.cc), a temporary file is left
// over however new it looks: here from a clock that went back.
TEST(RecordsConnectorEnvTest, TemporaryFilesAreLeftoversUnderTheFolderLock) {
  FakeEnv clock;
  files::MemFileSystem mem([&] { return clock.now_ms * 1'000'000; });
  files::MemFsEnv env(&mem, &clock);
  ASSERT_TRUE(mem.WriteFile("/c/.ferry-tmp-0123456789abcdef", "left by a crash").ok());
  clock.now_ms -= 24 * 60 * 60 * 1000;
  RecordsOptions options;
  options.root = "/c";
  options.env = &env;
  options.leftover_temps.all = true;
  RecordsConnector connector(options);
  ASSERT_TRUE(connector.Scan({}, {}).ok());
  EXPECT_TRUE(mem.List("/c")->empty());
}

// A record the connector wrote and the user rewrote within one tick of the clock,
// to the same size (the phone's "phone" over ferry's "first"): the edit is seen.
TEST(RecordsConnectorEnvTest, ASameSizeRewriteInTheTickOfTheApplyIsSeen) {
  FakeEnv clock;
  files::MemFileSystem mem([&] { return clock.now_ms * 1'000'000; });
  files::MemFsEnv env(&mem, &clock);
  ASSERT_TRUE(mem.Mkdir("/c").ok());
  RecordsOptions options;
  options.root = "/c";
  options.env = &env;
  RecordsConnector connector(options);
  v1::Item card = Card("ada", "VCARD/NOTE", "NOTE:first");
  auto stamp = connector.Apply("ada", "", &card, nullptr);
  ASSERT_TRUE(stamp.ok()) << stamp.status();
  EXPECT_EQ(stamp->back(), files::kRacyMark);
  std::string text = *mem.ReadFile("/c/ada.vcf");
  text.replace(text.find("first"), 5, "phone");
  ASSERT_TRUE(mem.WriteFile("/c/ada.vcf", text).ok());  // same inode, size and mtime

  auto card_ptr = std::make_shared<const v1::Item>(card);
  auto scan = connector.Scan({{"ada", card_ptr}}, {{"ada", *stamp}});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(Field(*scan->items.at("ada").item, "VCARD/NOTE"), "NOTE:phone");

  // Aged, the stamp is trusted and the file is not read.
  clock.now_ms += files::kRacyWindowMs + 1;
  auto aged = connector.Scan({{"ada", scan->items.at("ada").item}},
                             {{"ada", scan->items.at("ada").stamp}});
  ASSERT_TRUE(aged.ok()) << aged.status();
  auto again = connector.Scan({{"ada", aged->items.at("ada").item}},
                              {{"ada", aged->items.at("ada").stamp}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->bytes_read, 0u);
  EXPECT_EQ(again->items.at("ada").item, aged->items.at("ada").item);
}

}  // namespace
}  // namespace ferry::pim
