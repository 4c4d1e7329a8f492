// Contacts and calendars end to end: a real ferryd, devices with their own homes and
// vdir folders, the real engine and records connector; field-level merges and
// conflicts; the real-world corpus; khard and khal reading the synced folders.
#include <sys/stat.h>
#include <sys/time.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "gtest/gtest.h"
#include "src/client/collections.h"
#include "src/client/device.h"
#include "src/connectors/pim/record.h"
#include "src/connectors/pim/records_connector.h"
#include "src/seal/seal.h"
#include "tests/process.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using client::Device;
using client::LocalCollection;
using testing::FerrydProcess;
using testing::TempDir;

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::string ReadFile(const fs::path& path) { return testing::ReadWholeFile(path); }

// Sets a file's mtime `seconds` away from now, so that "the later edit" is certain.
void SetMtimeFromNow(const fs::path& path, int seconds) {
  struct timeval now;
  ::gettimeofday(&now, nullptr);
  struct timeval times[2] = {{now.tv_sec + seconds, 0}, {now.tv_sec + seconds, 0}};
  ASSERT_EQ(::utimes(path.c_str(), times), 0);
}

// What a folder holds, as the connector reads it: id -> fields.
std::map<std::string, pim::FieldMap> ReadRecords(const fs::path& root,
                                                 pim::RecordKind kind,
                                                 size_t* skipped = nullptr,
                                                 bool print_skipped = false) {
  pim::RecordsOptions options;
  options.root = root.string();
  options.kind = kind;
  pim::RecordsConnector connector(options);
  auto scan = connector.Scan({}, {});
  EXPECT_TRUE(scan.ok()) << scan.status();
  std::map<std::string, pim::FieldMap> out;
  if (!scan.ok()) return out;
  for (const auto& [id, local] : scan->items) {
    pim::FieldMap fields;
    for (const v1::Field& f : local.item->fields()) fields[f.name()] = f.bytes();
    out[id] = fields;
  }
  if (skipped != nullptr) *skipped = scan->skipped.size();
  if (print_skipped) {
    for (const auto& [what, why] : scan->skipped)
      std::cout << what << ": " << why << "\n";
  }
  return out;
}

// The value of `field` of record `id` in `root`, "" when absent.
std::string FieldOf(const fs::path& root, pim::RecordKind kind, const std::string& id,
                    const std::string& field) {
  auto records = ReadRecords(root, kind);
  auto it = records.find(id);
  if (it == records.end()) return "(no record)";
  auto f = it->second.find(field);
  return f == it->second.end() ? "" : f->second;
}

struct TestDevice {
  std::unique_ptr<Device> device;
  LocalCollection contacts, calendar;
  fs::path contacts_root, calendar_root;

  SyncReport Sync(const LocalCollection& local) {
    auto report = client::SyncCollection(*device, local, SyncOptions());
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : SyncReport();
  }
  void SyncAll() {
    Sync(contacts);
    Sync(calendar);
  }
};

class PimSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    server_ = std::make_unique<FerrydProcess>(dir_ / "server");
    ASSERT_TRUE(server_->ok()) << server_->error();
    a_ = MakeDevice("a", true);
    b_ = MakeDevice("b", false);
    c_ = MakeDevice("c", false);
  }

  TestDevice MakeDevice(const std::string& name, bool create) {
    client::LoginOptions options{dir_ / ("home-" + name),
                                 server_->address(),
                                 "alice",
                                 "passphrase",
                                 name,
                                 server_->fingerprint(),
                                 true};
    auto device = create ? Device::CreateAccount(options) : Device::Login(options);
    EXPECT_TRUE(device.ok()) << device.status();
    TestDevice d;
    d.device = *std::move(device);
    d.contacts_root = dir_ / ("contacts-" + name);
    d.calendar_root = dir_ / ("calendar-" + name);
    auto contacts = client::AddCollection(*d.device, "Contacts", "contacts",
                                          d.contacts_root.string());
    EXPECT_TRUE(contacts.ok()) << contacts.status();
    auto calendar = client::AddCollection(*d.device, "Calendar", "calendar",
                                          d.calendar_root.string());
    EXPECT_TRUE(calendar.ok()) << calendar.status();
    d.contacts = *contacts;
    d.calendar = *calendar;
    return d;
  }

  TempDir dir_;
  std::unique_ptr<FerrydProcess> server_;
  TestDevice a_, b_, c_;
};

constexpr pim::RecordKind kContact = pim::RecordKind::kContact;
constexpr pim::RecordKind kCalendar = pim::RecordKind::kCalendar;

constexpr char kAda[] =
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "UID:ada-1\r\n"
    "FN:Ada Lovelace\r\n"
    "N:Lovelace;Ada;;;\r\n"
    "TEL;TYPE=cell:+44 20 7946 0000\r\n"
    "EMAIL;TYPE=home:ada@example.org\r\n"
    "NOTE:Analytical engine\r\n"
    "X-CUSTOM;X-PARAM=kept:whatever\r\n"
    "END:VCARD\r\n";

// `text` with line `from` replaced by `to` (whole lines, CRLF).
std::string Replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST_F(PimSyncTest, CorpusArrivesEqualAndUntouchedFilesStayByteIdentical) {
  // Every real-world file, on device A. The corpus comes from test suites, so some
  // files share a UID (one vdir would hold one of them and report the others): files
  // are spread over several collections, none holding a UID twice.
  struct Bucket {
    std::set<std::string> uids;
    std::map<std::string, std::string> files;  // flat name -> text
  };
  std::map<pim::RecordKind, std::vector<Bucket>> buckets;
  size_t total = 0;
  const fs::path corpus = FERRY_TESTDATA_DIR "/pim";
  for (const auto& entry : fs::recursive_directory_iterator(corpus)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    if (ext != ".vcf" && ext != ".ics") continue;
    pim::RecordKind kind = ext == ".vcf" ? kContact : kCalendar;
    std::string flat = fs::relative(entry.path(), corpus).string();
    std::replace(flat.begin(), flat.end(), '/', '_');
    std::string text = ReadFile(entry.path());
    auto record = pim::ParseRecord(kind, text);
    std::string uid = record.ok() ? record->uid : "";
    std::vector<Bucket>& list = buckets[kind];
    auto bucket = std::find_if(list.begin(), list.end(), [&](const Bucket& b) {
      return uid.empty() || !b.uids.contains(uid);
    });
    if (bucket == list.end()) bucket = list.insert(list.end(), Bucket());
    if (!uid.empty()) bucket->uids.insert(uid);
    bucket->files[flat] = text;
    ++total;
  }
  ASSERT_GT(total, 150u);
  size_t records = 0, skipped = 0;
  for (const auto& [kind, list] : buckets) {
    for (size_t i = 0; i < list.size(); ++i) {
      std::string name = (kind == kContact ? "Corpus-contacts-" : "Corpus-calendar-") +
                         std::to_string(i);
      std::string kind_name = kind == kContact ? "contacts" : "calendar";
      fs::path a_root = dir_ / ("a-" + name), b_root = dir_ / ("b-" + name);
      for (const auto& [flat, text] : list[i].files) WriteFile(a_root / flat, text);
      auto a_local = client::AddCollection(*a_.device, name, kind_name, a_root.string());
      auto b_local = client::AddCollection(*b_.device, name, kind_name, b_root.string());
      ASSERT_TRUE(a_local.ok() && b_local.ok());
      for (auto [device, local] : {std::pair{&a_, &*a_local}, std::pair{&b_, &*b_local},
                                   std::pair{&a_, &*a_local}}) {
        ASSERT_TRUE(client::SyncCollection(*device->device, *local, SyncOptions()).ok());
      }
      size_t skipped_here = 0;
      auto a = ReadRecords(a_root, kind, &skipped_here, true);
      EXPECT_EQ(a, ReadRecords(b_root, kind)) << name;
      // Every file became an item or was reported (and the reasons are printed).
      EXPECT_EQ(a.size() + skipped_here, list[i].files.size()) << name;
      records += a.size();
      skipped += skipped_here;
      // Nothing on A was rewritten, moved or deleted: not the files that parse, and
      // not those that do not (reported and left alone).
      for (const auto& [flat, text] : list[i].files) {
        EXPECT_EQ(ReadFile(a_root / flat), text) << flat;
      }
    }
  }
  // All 18 vCards; of the 163 iCalendar files, 49 are a bare VEVENT, VTODO, ... without
  // the VCALENDAR every .ics file must have, and 13 are broken on purpose.
  EXPECT_GE(records, 18u + 163u - 49u - 13u);
  std::cout << "corpus: " << records << " records synced, " << skipped
            << " files reported and skipped\n";
}

TEST_F(PimSyncTest, EditsOfDifferentFieldsOnThreeDevicesMerge) {
  WriteFile(a_.contacts_root / "ada-1.vcf", kAda);
  a_.SyncAll();
  b_.SyncAll();
  c_.SyncAll();
  ASSERT_EQ(FieldOf(b_.contacts_root, kContact, "ada-1", "VCARD/NOTE"),
            "NOTE:Analytical engine");

  // A edits the note, B adds an e-mail address, C changes the phone number.
  WriteFile(a_.contacts_root / "ada-1.vcf",
            Replace(kAda, "NOTE:Analytical engine", "NOTE:First programmer"));
  fs::path b_file = b_.contacts_root / "ada-1.vcf";
  WriteFile(b_file, Replace(ReadFile(b_file), "END:VCARD",
                            "EMAIL;TYPE=work:ada@engine.example\r\nEND:VCARD"));
  fs::path c_file = c_.contacts_root / "ada-1.vcf";
  WriteFile(c_file, Replace(ReadFile(c_file), "+44 20 7946 0000", "+44 20 7946 0999"));
  SyncReport ra = a_.Sync(a_.contacts);
  SyncReport rb = b_.Sync(b_.contacts);
  SyncReport rc = c_.Sync(c_.contacts);
  a_.Sync(a_.contacts);
  b_.Sync(b_.contacts);
  EXPECT_EQ(ra.conflicts + rb.conflicts + rc.conflicts, 0u);

  auto a = ReadRecords(a_.contacts_root, kContact);
  EXPECT_EQ(a, ReadRecords(b_.contacts_root, kContact));
  EXPECT_EQ(a, ReadRecords(c_.contacts_root, kContact));
  std::string text = ReadFile(a_.contacts_root / "ada-1.vcf");
  EXPECT_NE(text.find("NOTE:First programmer"), std::string::npos) << text;
  EXPECT_NE(text.find("EMAIL;TYPE=work:ada@engine.example"), std::string::npos) << text;
  EXPECT_NE(text.find("TEL;TYPE=cell:+44 20 7946 0999"), std::string::npos) << text;
  EXPECT_EQ(text.find("0000"), std::string::npos) << text;
  // What nobody edited stays as written, unknown properties and parameters included.
  EXPECT_NE(text.find("X-CUSTOM;X-PARAM=kept:whatever\r\n"), std::string::npos) << text;
  EXPECT_TRUE(text.starts_with("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada-1\r\n")) << text;
}

TEST_F(PimSyncTest, SameFieldEditedTwiceLaterWinsAndTheOtherIsLoggedAndResolvable) {
  WriteFile(a_.contacts_root / "ada-1.vcf", kAda);
  a_.SyncAll();
  b_.SyncAll();
  // A edits the note first (an hour ago); B edits it later (now).
  fs::path a_file = a_.contacts_root / "ada-1.vcf";
  WriteFile(a_file, Replace(kAda, "NOTE:Analytical engine", "NOTE:from A"));
  SetMtimeFromNow(a_file, -3600);
  a_.Sync(a_.contacts);
  fs::path b_file = b_.contacts_root / "ada-1.vcf";
  WriteFile(b_file, Replace(ReadFile(b_file), "NOTE:Analytical engine", "NOTE:from B"));
  SetMtimeFromNow(b_file, 3600);
  SyncReport rb = b_.Sync(b_.contacts);
  EXPECT_EQ(rb.conflicts, 1u);
  a_.Sync(a_.contacts);
  c_.Sync(c_.contacts);
  EXPECT_EQ(FieldOf(a_.contacts_root, kContact, "ada-1", "VCARD/NOTE"), "NOTE:from B");
  EXPECT_EQ(FieldOf(b_.contacts_root, kContact, "ada-1", "VCARD/NOTE"), "NOTE:from B");
  EXPECT_EQ(ReadRecords(a_.contacts_root, kContact),
            ReadRecords(c_.contacts_root, kContact));

  auto conflicts = client::ListConflicts(b_.contacts);
  ASSERT_TRUE(conflicts.ok()) << conflicts.status();
  ASSERT_EQ(conflicts->size(), 1u);
  const client::ConflictView c = conflicts->front();
  EXPECT_EQ(c.item_id, "ada-1");
  EXPECT_EQ(c.field, "VCARD/NOTE");
  EXPECT_EQ(c.kept_value, "NOTE:from B");
  EXPECT_EQ(c.other_value, "NOTE:from A");
  EXPECT_FALSE(c.resolved);

  // Switching to the other value is an edit like any other: it reaches every device.
  ASSERT_TRUE(client::ResolveConflict(*b_.device, b_.contacts, c.id, "other").ok());
  EXPECT_EQ(FieldOf(b_.contacts_root, kContact, "ada-1", "VCARD/NOTE"), "NOTE:from A");
  b_.Sync(b_.contacts);
  a_.Sync(a_.contacts);
  EXPECT_EQ(FieldOf(a_.contacts_root, kContact, "ada-1", "VCARD/NOTE"), "NOTE:from A");
  conflicts = client::ListConflicts(b_.contacts);
  ASSERT_TRUE(conflicts.ok());
  EXPECT_TRUE(conflicts->front().resolved);

  // A new value given by hand.
  absl::Status by_hand =
      client::ResolveConflict(*b_.device, b_.contacts, c.id, "Countess");
  ASSERT_TRUE(by_hand.ok()) << by_hand;
  EXPECT_EQ(FieldOf(b_.contacts_root, kContact, "ada-1", "VCARD/NOTE"), "NOTE:Countess");
  EXPECT_FALSE(client::ResolveConflict(*b_.device, b_.contacts, 999, "other").ok());
}

TEST_F(PimSyncTest, EditBeatsDeleteAndTheLogSaysSo) {
  WriteFile(a_.contacts_root / "ada-1.vcf", kAda);
  // Another contact, so that deleting Ada does not empty the folder (which the
  // mass-deletion guard would stop).
  WriteFile(a_.contacts_root / "other.vcf",
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:other\r\nFN:Other\r\nEND:VCARD\r\n");
  a_.SyncAll();
  b_.SyncAll();
  fs::remove(a_.contacts_root / "ada-1.vcf");
  a_.Sync(a_.contacts);
  fs::path b_file = b_.contacts_root / "ada-1.vcf";
  WriteFile(b_file,
            Replace(ReadFile(b_file), "NOTE:Analytical engine", "NOTE:still here"));
  SyncReport rb = b_.Sync(b_.contacts);
  EXPECT_EQ(rb.conflicts, 1u);
  a_.Sync(a_.contacts);
  EXPECT_EQ(FieldOf(a_.contacts_root, kContact, "ada-1", "VCARD/NOTE"),
            "NOTE:still here");
  c_.Sync(c_.contacts);
  EXPECT_EQ(ReadRecords(a_.contacts_root, kContact),
            ReadRecords(b_.contacts_root, kContact));
  EXPECT_EQ(ReadRecords(a_.contacts_root, kContact),
            ReadRecords(c_.contacts_root, kContact));
  auto conflicts = client::ListConflicts(b_.contacts);
  ASSERT_TRUE(conflicts.ok());
  ASSERT_EQ(conflicts->size(), 1u);
  EXPECT_EQ(conflicts->front().kind, "edit/delete");
}

TEST_F(PimSyncTest, MalformedFilesAreReportedSkippedAndNeverTouched) {
  std::map<std::string, std::string> bad = {
      {"no-end.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x1\r\nFN:X\r\n"},
      {"garbage.vcf", std::string("\x00\x01\xff\xfe binary", 12)},
      {"bad-fold.vcf", " folded first\r\nBEGIN:VCARD\r\nEND:VCARD\r\n"},
      {"dup-a.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dup\r\nFN:One\r\nEND:VCARD\r\n"},
      {"dup-b.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dup\r\nFN:Two\r\nEND:VCARD\r\n"},
  };
  // A 10 MB photo: larger than a content line may be.
  bad["photo.vcf"] = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:photo\r\nPHOTO;ENCODING=b:" +
                     std::string(11u << 20, 'A') + "\r\nEND:VCARD\r\n";
  for (const auto& [name, text] : bad) WriteFile(a_.contacts_root / name, text);
  WriteFile(a_.contacts_root / "ada-1.vcf", kAda);
  SyncReport ra = a_.Sync(a_.contacts);
  std::set<std::string> reported;
  for (const auto& [what, why] : ra.skipped) {
    reported.insert(what);
    EXPECT_FALSE(why.empty()) << what;
  }
  for (std::string_view name :
       {"no-end.vcf", "garbage.vcf", "bad-fold.vcf", "photo.vcf"}) {
    EXPECT_TRUE(reported.contains(std::string(name))) << name;
  }
  EXPECT_TRUE(reported.contains("dup-a.vcf") || reported.contains("dup-b.vcf"));
  b_.Sync(b_.contacts);
  auto b = ReadRecords(b_.contacts_root, kContact);
  EXPECT_TRUE(b.contains("ada-1"));
  EXPECT_TRUE(b.contains("dup"));
  EXPECT_EQ(b.size(), 2u);
  for (const auto& [name, text] : bad) {
    EXPECT_EQ(ReadFile(a_.contacts_root / name), text) << name;
  }
}

TEST_F(PimSyncTest, CalendarOverridesAndTimezonesMergePerPart) {
  constexpr char kEvent[] =
      "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
      "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n"
      "DTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
      "END:STANDARD\r\nEND:VTIMEZONE\r\n"
      "BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\n"
      "DTSTART;TZID=Europe/Berlin:20260105T090000\r\nSUMMARY:Standup\r\n"
      "RRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n"
      "BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\n"
      "RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000\r\n"
      "DTSTART;TZID=Europe/Berlin:20260112T100000\r\nSUMMARY:Standup (late)\r\n"
      "END:VEVENT\r\nEND:VCALENDAR\r\n";
  WriteFile(a_.calendar_root / "weekly-1.ics", kEvent);
  a_.SyncAll();
  b_.SyncAll();
  // A changes the series' summary and DTSTAMP; B the override's location and DTSTAMP.
  fs::path a_file = a_.calendar_root / "weekly-1.ics";
  std::string a_text = Replace(kEvent, "SUMMARY:Standup\r\n", "SUMMARY:Daily sync\r\n");
  a_text =
      Replace(a_text, "DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105",
              "DTSTAMP:20260201T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105");
  WriteFile(a_file, a_text);
  fs::path b_file = b_.calendar_root / "weekly-1.ics";
  std::string b_text = Replace(ReadFile(b_file), "SUMMARY:Standup (late)\r\n",
                               "SUMMARY:Standup (late)\r\nLOCATION:Room 4\r\n");
  WriteFile(b_file, b_text);
  SyncReport ra = a_.Sync(a_.calendar);
  SyncReport rb = b_.Sync(b_.calendar);
  a_.Sync(a_.calendar);
  EXPECT_EQ(ra.conflicts + rb.conflicts, 0u);
  auto a = ReadRecords(a_.calendar_root, kCalendar);
  EXPECT_EQ(a, ReadRecords(b_.calendar_root, kCalendar));
  std::string text = ReadFile(a_file);
  EXPECT_NE(text.find("SUMMARY:Daily sync"), std::string::npos) << text;
  EXPECT_NE(text.find("LOCATION:Room 4"), std::string::npos) << text;
  EXPECT_NE(text.find("TZID:Europe/Berlin"), std::string::npos) << text;
}

// The tools people use read what ferry wrote, and what they write reaches the other
// device.
class KhardKhalTest : public PimSyncTest {
 protected:
  testing::CommandResult Tool(const std::vector<std::string>& args,
                              const std::string& input = "") {
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "HOME=" + dir_ / "tool-home",
                                     "XDG_DATA_HOME=" + dir_ / "tool-data",
                                     "XDG_CONFIG_HOME=" + dir_ / "tool-config",
                                     "TZ=UTC",
                                     "LANG=C.UTF-8"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv, input);
  }
  std::string KhardConfig(const fs::path& root, const std::string& name) {
    std::string path = dir_ / ("khard-" + name + ".conf");
    WriteFile(path, "[addressbooks]\n[[book]]\npath = " + root.string() +
                        "\n[general]\ndefault_action = list\neditor = /bin/false\n"
                        "merge_editor = /bin/false\n");
    return path;
  }
  std::string KhalConfig(const fs::path& root, const std::string& name) {
    std::string path = dir_ / ("khal-" + name + ".conf");
    WriteFile(path, "[calendars]\n[[home]]\npath = " + root.string() +
                        "\n[locale]\ntimeformat = %H:%M\ndateformat = %Y-%m-%d\n"
                        "longdateformat = %Y-%m-%d\ndatetimeformat = %Y-%m-%d %H:%M\n"
                        "longdatetimeformat = %Y-%m-%d %H:%M\n[default]\n"
                        "default_calendar = home\n");
    return path;
  }
};

TEST_F(KhardKhalTest, ContactAndEventMadeByTheToolsOnAAreListedByThemOnB) {
  auto made =
      Tool({"khard", "-c", KhardConfig(a_.contacts_root, "a"), "new", "-a", "book"},
           "First name : Grace\nLast name : Hopper\nPhone :\n"
           "    work : +1 202 555 0100\n");
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  auto event = Tool({"khal", "-c", KhalConfig(a_.calendar_root, "a"), "new", "2026-12-01",
                     "10:00", "11:00", "Compiler review"});
  ASSERT_EQ(event.exit_code, 0) << event.out << event.err;
  a_.SyncAll();
  b_.SyncAll();

  auto listed = Tool({"khard", "-c", KhardConfig(b_.contacts_root, "b"), "list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("Grace Hopper"), std::string::npos) << listed.out;
  auto phone = Tool({"khard", "-c", KhardConfig(b_.contacts_root, "b"), "phone"});
  EXPECT_NE(phone.out.find("+1 202 555 0100"), std::string::npos) << phone.out;
  auto events = Tool({"khal", "-c", KhalConfig(b_.calendar_root, "b"), "list",
                      "2026-12-01", "2026-12-02"});
  EXPECT_EQ(events.exit_code, 0) << events.err;
  EXPECT_NE(events.out.find("Compiler review"), std::string::npos) << events.out;

  // And back: B edits the contact's phone through a file edit; khard on A sees it.
  for (const auto& entry : fs::directory_iterator(b_.contacts_root)) {
    std::string text = ReadFile(entry.path());
    WriteFile(entry.path(), Replace(text, "+1 202 555 0100", "+1 202 555 0199"));
  }
  b_.SyncAll();
  a_.SyncAll();
  auto phone_a = Tool({"khard", "-c", KhardConfig(a_.contacts_root, "a"), "phone"});
  EXPECT_NE(phone_a.out.find("+1 202 555 0199"), std::string::npos) << phone_a.out;
}

}  // namespace
}  // namespace ferry
