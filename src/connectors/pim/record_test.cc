#include "src/connectors/pim/record.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace ferry::pim {
namespace {

constexpr RecordKind kContact = RecordKind::kContact;
constexpr RecordKind kCalendar = RecordKind::kCalendar;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

Record ParseOk(RecordKind kind, std::string_view text) {
  absl::StatusOr<Record> record = ParseRecord(kind, text);
  EXPECT_TRUE(record.ok()) << record.status() << "\n" << text;
  return record.ok() ? *std::move(record) : Record{};
}

std::string RewriteOk(RecordKind kind, std::string_view text, const FieldMap& fields) {
  absl::StatusOr<std::string> out = RewriteRecord(kind, text, fields);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *std::move(out) : std::string();
}

std::string SerializeOk(RecordKind kind, const FieldMap& fields) {
  absl::StatusOr<std::string> out = SerializeRecord(kind, fields);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *std::move(out) : std::string();
}

void ExpectParseError(RecordKind kind, std::string_view text, std::string_view needle) {
  absl::StatusOr<Record> record = ParseRecord(kind, text);
  ASSERT_FALSE(record.ok()) << text;
  EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument)
      << record.status();
  EXPECT_NE(Message(record.status()).find(needle), std::string::npos)
      << "want \"" << needle << "\" in " << record.status();
}

// FNV-1a 64 as the field names write it, computed independently of record.cc.
std::string Hash(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(hash));
  return out;
}

std::vector<std::string> FieldNames(const FieldMap& fields) {
  std::vector<std::string> names;
  for (const auto& [name, value] : fields) names.push_back(name);
  return names;
}

// Serializing and parsing again gives the same fields and UID.
void ExpectSerializeRoundTrip(RecordKind kind, const Record& record) {
  absl::StatusOr<std::string> text = SerializeRecord(kind, record.fields);
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<Record> again = ParseRecord(kind, *text);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << *text;
  EXPECT_EQ(again->fields, record.fields) << *text;
  EXPECT_EQ(again->uid, record.uid);
}

const std::string kContactText =
    "BEGIN:VCARD\r\n"
    "VERSION:4.0\r\n"
    "FN:Ada Lovelace\r\n"
    "N:Lovelace;Ada;;;\r\n"
    "TEL;TYPE=home:+44 1\r\n"
    "TEL;TYPE=work:+44 2\r\n"
    "EMAIL:ada@example.org\r\n"
    "NOTE:A long note that is folded because it is longer than seventy-five oc\r\n"
    " tets.\r\n"
    "UID:ada-1\r\n"
    "END:VCARD\r\n";

// ---------------------------------------------------------------------------------
// Field names and values.

TEST(ParseRecordTest, SingletonAndContentKeys) {
  Record record = ParseOk(kContact, kContactText);
  EXPECT_EQ(record.uid, "ada-1");
  const std::vector<std::string> want = {
      "VCARD",
      "VCARD/EMAIL/" + Hash("EMAIL:ada@example.org"),
      "VCARD/FN",
      "VCARD/N",
      "VCARD/NOTE",
      "VCARD/TEL/" + Hash("TEL;TYPE=home:+44 1"),
      "VCARD/TEL/" + Hash("TEL;TYPE=work:+44 2"),
      "VCARD/UID",
      "VCARD/VERSION",
  };
  std::vector<std::string> sorted = want;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(FieldNames(record.fields), sorted);
  EXPECT_EQ(record.fields["VCARD"], "");
  EXPECT_EQ(record.fields["VCARD/FN"], "FN:Ada Lovelace");
  EXPECT_EQ(record.fields["VCARD/NOTE"],
            "NOTE:A long note that is folded because it is longer than seventy-five "
            "octets.");
  EXPECT_EQ(record.fields[want[5]], "TEL;TYPE=home:+44 1");
}

TEST(ParseRecordTest, SecondSingletonIsKeyedByContent) {
  Record record = ParseOk(kContact, "BEGIN:VCARD\nFN:A\nFN:B\nFN:B\nEND:VCARD\n");
  EXPECT_EQ(record.fields["VCARD/FN"], "FN:A");
  EXPECT_EQ(record.fields["VCARD/FN/" + Hash("FN:B")], "FN:B");
  EXPECT_EQ(record.fields["VCARD/FN/" + Hash("FN:B") + "~2"], "FN:B");
  EXPECT_EQ(record.fields.size(), 4u);
  ExpectSerializeRoundTrip(kContact, record);
}

TEST(ParseRecordTest, DuplicateIdenticalLines) {
  Record record = ParseOk(
      kContact, "BEGIN:VCARD\r\nTEL:1\r\nTEL:1\r\nTEL:2\r\nTEL:1\r\nEND:VCARD\r\n");
  const std::string tel1 = "VCARD/TEL/" + Hash("TEL:1");
  EXPECT_EQ(FieldNames(record.fields),
            (std::vector<std::string>{"VCARD", tel1, tel1 + "~2", tel1 + "~3",
                                      "VCARD/TEL/" + Hash("TEL:2")}));
  ExpectSerializeRoundTrip(kContact, record);
}

TEST(ParseRecordTest, CanonicalText) {
  // Names upper-cased (property and parameter), group, parameter values and order and
  // the value kept; folds removed; parameter quoting kept.
  Record record = ParseOk(kContact,
                          "begin:vcard\r\n"
                          "item1.email;type=INTERNET;Pref=1:a@b\r\n"
                          "x-label;X-Q=\"a:b;c\":v\\,w\r\n"
                          "note:line1\\nline2 \r\n"
                          "\t continued\r\n"
                          "end:VCARD\r\n");
  EXPECT_EQ(record.fields["VCARD/EMAIL/" + Hash("item1.EMAIL;TYPE=INTERNET;PREF=1:a@b")],
            "item1.EMAIL;TYPE=INTERNET;PREF=1:a@b");
  EXPECT_EQ(record.fields["VCARD/X-LABEL/" + Hash("X-LABEL;X-Q=\"a:b;c\":v\\,w")],
            "X-LABEL;X-Q=\"a:b;c\":v\\,w");
  EXPECT_EQ(record.fields["VCARD/NOTE"], "NOTE:line1\\nline2  continued");
  ExpectSerializeRoundTrip(kContact, record);
}

TEST(ParseRecordTest, AllVcardVersionsAndQuotedPrintable) {
  for (std::string version : {"2.1", "3.0", "4.0"}) {
    Record record = ParseOk(
        kContact, "BEGIN:VCARD\r\nVERSION:" + version + "\r\nFN:X\r\nEND:VCARD\r\n");
    EXPECT_EQ(record.fields["VCARD/VERSION"], "VERSION:" + version);
  }
  const std::string text =
      "BEGIN:VCARD\r\n"
      "VERSION:2.1\r\n"
      "N;CHARSET=ISO-8859-1:Ren\xE9\r\n"
      "TEL;HOME;VOICE:555\r\n"
      "NOTE;ENCODING=QUOTED-PRINTABLE:first=0D=0A=\r\n"
      "second\r\n"
      "END:VCARD\r\n";
  Record record = ParseOk(kContact, text);
  EXPECT_EQ(record.fields["VCARD/N"], "N;CHARSET=ISO-8859-1:Ren\xE9");
  EXPECT_EQ(record.fields["VCARD/NOTE"],
            "NOTE;ENCODING=QUOTED-PRINTABLE:first=0D=0Asecond");
  EXPECT_EQ(record.fields["VCARD/TEL/" + Hash("TEL;HOME;VOICE:555")],
            "TEL;HOME;VOICE:555");
  EXPECT_EQ(RewriteOk(kContact, text, record.fields), text);
  ExpectSerializeRoundTrip(kContact, record);
}

TEST(ParseRecordTest, NestedVcardIsAWholeComponentField) {
  // vCard 2.1 AGENT with an embedded vCard.
  Record record = ParseOk(kContact,
                          "BEGIN:VCARD\nVERSION:2.1\nAGENT:\nBEGIN:VCARD\nFN:Agent\n"
                          "END:VCARD\nEND:VCARD\n");
  const std::string inner = "BEGIN:VCARD\nFN:Agent\nEND:VCARD";
  EXPECT_EQ(record.fields["VCARD/VCARD/" + Hash(inner)], inner);
  EXPECT_EQ(record.fields.size(), 4u);
  ExpectSerializeRoundTrip(kContact, record);
}

TEST(ParseRecordTest, MarkerFieldsAndEmptyComponents) {
  EXPECT_EQ(ParseOk(kCalendar, "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").fields,
            (FieldMap{{"VCALENDAR", ""}}));
  Record record = ParseOk(
      kCalendar, "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nEND:VTODO\r\nEND:VCALENDAR\r\n");
  EXPECT_EQ(record.fields, (FieldMap{{"VCALENDAR", ""}, {"VCALENDAR/VTODO", ""}}));
  EXPECT_EQ(record.uid, "");
  ExpectSerializeRoundTrip(kCalendar, record);
  EXPECT_EQ(ParseOk(kContact, "BEGIN:VCARD\nEND:VCARD").fields,
            (FieldMap{{"VCARD", ""}}));
}

TEST(ParseRecordTest, SiblingPartsAndUidQualifiers) {
  // Without UIDs: "#2" for the second of a name.
  Record record = ParseOk(kContact,
                          "BEGIN:VCARD\nFN:A\nEND:VCARD\nBEGIN:VCARD\nFN:B\n"
                          "END:VCARD\nBEGIN:VCARD\nFN:C\nEND:VCARD\n");
  EXPECT_EQ(record.uid, "");
  EXPECT_EQ(record.fields["VCARD/FN"], "FN:A");
  EXPECT_EQ(record.fields["VCARD#2/FN"], "FN:B");
  EXPECT_EQ(record.fields["VCARD#3/FN"], "FN:C");
  ExpectSerializeRoundTrip(kContact, record);

  // Different UIDs: no record UID, each part qualified by its UID.
  record = ParseOk(kContact,
                   "BEGIN:VCARD\nUID:a\nEND:VCARD\nBEGIN:VCARD\nUID:b\n"
                   "END:VCARD\nBEGIN:VCARD\nFN:none\nEND:VCARD\n");
  EXPECT_EQ(record.uid, "");
  EXPECT_EQ(FieldNames(record.fields),
            (std::vector<std::string>{"VCARD", "VCARD/FN", "VCARD:a", "VCARD:a/UID",
                                      "VCARD:b", "VCARD:b/UID"}));
  ExpectSerializeRoundTrip(kContact, record);

  // One UID shared by every component that has one: it is the record's, no qualifier.
  record = ParseOk(kContact,
                   "BEGIN:VCARD\nUID: same \nEND:VCARD\nBEGIN:VCARD\n"
                   "UID:same\nEND:VCARD\nBEGIN:VCARD\nEND:VCARD\n");
  EXPECT_EQ(record.uid, "same");
  EXPECT_EQ(FieldNames(record.fields),
            (std::vector<std::string>{"VCARD", "VCARD#2", "VCARD#2/UID", "VCARD#3",
                                      "VCARD/UID"}));
  ExpectSerializeRoundTrip(kContact, record);
}

TEST(ParseRecordTest, ManySiblingsKeepTheirNumbers) {
  std::string text;
  for (int i = 1; i <= 12; ++i)
    text += "BEGIN:VCARD\nFN:" + std::to_string(i) + "\nEND:VCARD\n";
  Record record = ParseOk(kContact, text);
  EXPECT_EQ(record.fields["VCARD#2/FN"], "FN:2");
  EXPECT_EQ(record.fields["VCARD#10/FN"], "FN:10");
  ExpectSerializeRoundTrip(kContact, record);
}

const std::string kRecurringEvent =
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//ferry//test//EN\r\n"
    "BEGIN:VTIMEZONE\r\n"
    "TZID:Europe/Berlin\r\n"
    "BEGIN:STANDARD\r\n"
    "DTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\n"
    "END:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:weekly@example.org\r\n"
    "DTSTAMP:20250101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20250101T090000\r\n"
    "RRULE:FREQ=WEEKLY\r\n"
    "SUMMARY:Standup\r\n"
    "EXDATE;TZID=Europe/Berlin:20250115T090000\r\n"
    "EXDATE;TZID=Europe/Berlin:20250122T090000\r\n"
    "BEGIN:VALARM\r\n"
    "ACTION:DISPLAY\r\n"
    "TRIGGER:-PT10M\r\n"
    "END:VALARM\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:weekly@example.org\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20250108T090000\r\n"
    "DTSTAMP:20250101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20250108T100000\r\n"
    "SUMMARY:Standup (moved)\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n";

TEST(ParseRecordTest, RecurrenceOverridesAndWholeComponents) {
  Record record = ParseOk(kCalendar, kRecurringEvent);
  EXPECT_EQ(record.uid, "weekly@example.org");
  const std::string tz =
      "BEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\n"
      "TZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE";
  const std::string alarm = "BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT10M\nEND:VALARM";
  const std::string exdate = "EXDATE;TZID=Europe/Berlin:20250115T090000";
  EXPECT_EQ(record.fields["VCALENDAR/VTIMEZONE/Europe%2FBerlin"], tz);
  EXPECT_EQ(record.fields["VCALENDAR/VEVENT/VALARM/" + Hash(alarm)], alarm);
  EXPECT_EQ(record.fields["VCALENDAR/VEVENT/EXDATE/" + Hash(exdate)], exdate);
  EXPECT_EQ(record.fields["VCALENDAR/VEVENT@20250108T090000/SUMMARY"],
            "SUMMARY:Standup (moved)");
  EXPECT_EQ(record.fields["VCALENDAR/VEVENT@20250108T090000"], "");
  EXPECT_EQ(record.fields["VCALENDAR/VEVENT/UID"], "UID:weekly@example.org");
  EXPECT_EQ(record.fields.size(), 19u);
  ExpectSerializeRoundTrip(kCalendar, record);
  EXPECT_EQ(RewriteOk(kCalendar, kRecurringEvent, record.fields), kRecurringEvent);
}

TEST(ParseRecordTest, UidsAreUnescapedTrimmedAndEscapedInPaths) {
  Record record =
      ParseOk(kCalendar,
              "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:  a/b%c#d\\,e \nEND:VEVENT\n"
              "BEGIN:VEVENT\nUID:x\nRECURRENCE-ID:2025/01\nEND:VEVENT\n"
              "END:VCALENDAR\n");
  EXPECT_EQ(record.uid, "");
  EXPECT_EQ(FieldNames(record.fields),
            (std::vector<std::string>{"VCALENDAR", "VCALENDAR/VEVENT:a%2Fb%25c%23d,e",
                                      "VCALENDAR/VEVENT:a%2Fb%25c%23d,e/UID",
                                      "VCALENDAR/VEVENT:x@2025%2F01",
                                      "VCALENDAR/VEVENT:x@2025%2F01/RECURRENCE-ID",
                                      "VCALENDAR/VEVENT:x@2025%2F01/UID"}));
  ExpectSerializeRoundTrip(kCalendar, record);

  record =
      ParseOk(kCalendar,
              "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a/b\\;c\nEND:VEVENT\nEND:VCALENDAR\n");
  EXPECT_EQ(record.uid, "a/b;c");
  EXPECT_TRUE(record.fields.contains("VCALENDAR/VEVENT/UID"));
}

TEST(ParseRecordTest, MultipleCalendarsAndVtimezoneWithoutTzid) {
  Record record = ParseOk(kCalendar,
                          "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nX:1\nEND:VTIMEZONE\n"
                          "END:VCALENDAR\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\n"
                          "END:VCALENDAR\n");
  const std::string tz = "BEGIN:VTIMEZONE\nX:1\nEND:VTIMEZONE";
  EXPECT_EQ(record.fields["VCALENDAR/VTIMEZONE/" + Hash(tz)], tz);
  EXPECT_TRUE(record.fields.contains("VCALENDAR#2/VEVENT"));
  ExpectSerializeRoundTrip(kCalendar, record);
}

// ---------------------------------------------------------------------------------
// Malformed input.

TEST(ParseRecordErrorTest, Structure) {
  ExpectParseError(kContact, "BEGIN:VCARD\r\nFN:x\r\n", "line 1: missing END:VCARD");
  ExpectParseError(kContact, "BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\nEND:VCARD\r\n",
                   "line 4: END:VCARD without BEGIN");
  ExpectParseError(kCalendar, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VTODO\nEND:VCALENDAR\n",
                   "line 3: END:VTODO does not match BEGIN:VEVENT on line 2");
  ExpectParseError(kCalendar, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n",
                   "line 3: END:VCALENDAR does not match BEGIN:VEVENT");
  ExpectParseError(kContact, "BEGIN:VCARD\nEND:VCARD\nX-TRAILER:1\n",
                   "line 3: text after END:VCARD");
  ExpectParseError(kContact, "FN:x\nBEGIN:VCARD\nEND:VCARD\n",
                   "line 1: text before BEGIN:VCARD");
  ExpectParseError(kContact, "", "no BEGIN:VCARD");
  ExpectParseError(kCalendar, "\r\n\r\n", "no BEGIN:VCALENDAR");
  ExpectParseError(kContact, "BEGIN:\nEND:\n", "line 1: BEGIN without a component name");
}

TEST(ParseRecordErrorTest, WrongKind) {
  ExpectParseError(
      kContact, "BEGIN:VCALENDAR\nEND:VCALENDAR\n",
      "line 1: top-level component VCALENDAR in a contact file (want VCARD)");
  ExpectParseError(kCalendar, "BEGIN:VCARD\nEND:VCARD\n", "(want VCALENDAR)");
  ExpectParseError(kCalendar,
                   "BEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\n",
                   "line 3: top-level component VEVENT");
}

TEST(ParseRecordErrorTest, LineNumbersCountPhysicalLines) {
  // Two leading blank lines, a folded line, a blank line and a "\r\r\n" ending.
  ExpectParseError(kContact,
                   "\r\n\r\nBEGIN:VCARD\r\nNOTE:a\r\n b\r\n\r\nFN:x\r\r\nEND:VCARD\r\n"
                   "END:VCARD\r\n",
                   "line 9: END:VCARD without BEGIN");
  ExpectParseError(kContact, "\n\nFN:x\n", "line 3: text before");
  ExpectParseError(kContact, "\n\nBEGIN:VCARD\n", "line 3: missing END:VCARD");
}

TEST(ParseRecordErrorTest, GarbageAndBinary) {
  using namespace std::string_literals;
  ExpectParseError(kContact, "BEGIN:VCARD\nFN:a\0b\nEND:VCARD\n"s, "line 2: NUL byte");
  ExpectParseError(kContact, "BEGIN:VCARD\nFN:\xFF\xFE\nEND:VCARD\n",
                   "line 2: invalid UTF-8");
  ExpectParseError(kContact, "\x89PNG\r\n\x1A\n", "line 1:");
  ExpectParseError(kCalendar, "this is not a calendar\n", "line 1: no ':'");
  ExpectParseError(kCalendar, "BEGIN:VCALENDAR\ngarbage\nEND:VCALENDAR\n",
                   "line 2: no ':'");
}

// ---------------------------------------------------------------------------------
// RewriteRecord.

std::string WithCr(std::string_view lf_text) {
  std::string out;
  for (char c : lf_text) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

TEST(RewriteRecordTest, ChangingOneFieldChangesOnlyItsLine) {
  Record record = ParseOk(kContact, kContactText);
  const std::string tel = "VCARD/TEL/" + Hash("TEL;TYPE=work:+44 2");
  ASSERT_TRUE(record.fields.contains(tel));
  record.fields[tel] = "TEL;TYPE=work:+44 3";
  const std::string out = RewriteOk(kContact, kContactText, record.fields);
  std::string want = kContactText;
  want.replace(want.find("+44 2"), 5, "+44 3");
  EXPECT_EQ(out, want);
  // The changed TEL is keyed by its new content now; everything else is unchanged.
  Record again = ParseOk(kContact, out);
  record.fields.erase(tel);
  record.fields["VCARD/TEL/" + Hash("TEL;TYPE=work:+44 3")] = "TEL;TYPE=work:+44 3";
  EXPECT_EQ(again.fields, record.fields);
}

TEST(RewriteRecordTest, RemovesAndAddsFields) {
  Record record = ParseOk(kContact, kContactText);
  record.fields.erase("VCARD/EMAIL/" + Hash("EMAIL:ada@example.org"));
  record.fields["VCARD/TITLE"] = "TITLE:Countess";
  record.fields["VCARD/EMAIL/" + Hash("EMAIL:ada@engine.example")] =
      "EMAIL;TYPE=work:ada@engine.example";
  const std::string out = RewriteOk(kContact, kContactText, record.fields);
  std::string want = kContactText;
  want.erase(want.find("EMAIL:ada@example.org\r\n"), 23);
  want.insert(want.find("END:VCARD"),
              "EMAIL;TYPE=work:ada@engine.example\r\nTITLE:Countess\r\n");
  EXPECT_EQ(out, want);
  EXPECT_EQ(ParseOk(kContact, out).fields.size(), record.fields.size());
}

TEST(RewriteRecordTest, KeepsLfEndingsBomAndFoldsAsWritten) {
  const std::string text =
      "\xEF\xBB\xBF"
      "BEGIN:VCARD\n"
      "VERSION:3.0\n"
      "NOTE:folded\n"
      "\tat an odd place\n"
      "FN:Old\n"
      "\n"
      "END:VCARD";  // no final line ending
  Record record = ParseOk(kContact, text);
  EXPECT_EQ(RewriteOk(kContact, text, record.fields), text);
  record.fields["VCARD/FN"] = "FN:" + std::string(100, 'n');
  std::string out = RewriteOk(kContact, text, record.fields);
  EXPECT_EQ(out,
            "\xEF\xBB\xBF"
            "BEGIN:VCARD\nVERSION:3.0\nNOTE:folded\n\tat an odd place\nFN:" +
                std::string(72, 'n') + "\n " + std::string(28, 'n') + "\nEND:VCARD");
  EXPECT_EQ(ParseOk(kContact, out).fields["VCARD/FN"], record.fields["VCARD/FN"]);

  // A new top-level part after a last line without ending.
  record.fields["VCARD#2"] = "";
  record.fields["VCARD#2/FN"] = "FN:Second";
  out = RewriteOk(kContact, text, record.fields);
  EXPECT_TRUE(out.ends_with("END:VCARD\nBEGIN:VCARD\nFN:Second\nEND:VCARD\n")) << out;
  EXPECT_EQ(ParseOk(kContact, out).fields, record.fields);
}

TEST(RewriteRecordTest, CrlfFileGetsCrlfLines) {
  const std::string text = WithCr("BEGIN:VCARD\nFN:Old\nEND:VCARD\n");
  Record record = ParseOk(kContact, text);
  record.fields["VCARD/FN"] = "FN:New";
  record.fields["VCARD/NOTE"] = "NOTE:" + std::string(80, 'x');
  EXPECT_EQ(RewriteOk(kContact, text, record.fields),
            WithCr("BEGIN:VCARD\nFN:New\nNOTE:" + std::string(70, 'x') + "\n " +
                   std::string(10, 'x') + "\nEND:VCARD\n"));
}

TEST(RewriteRecordTest, OverridePartsAndWholeComponents) {
  Record record = ParseOk(kCalendar, kRecurringEvent);
  FieldMap fields = record.fields;
  // A new override: right before END:VCALENDAR.
  const std::string part = "VCALENDAR/VEVENT@20250129T090000";
  fields[part] = "";
  fields[part + "/UID"] = "UID:weekly@example.org";
  fields[part + "/RECURRENCE-ID"] = "RECURRENCE-ID;TZID=Europe/Berlin:20250129T090000";
  fields[part + "/SUMMARY"] = "SUMMARY:Standup (cancelled)";
  fields[part + "/STATUS"] = "STATUS:CANCELLED";
  std::string out = RewriteOk(kCalendar, kRecurringEvent, fields);
  std::string want = kRecurringEvent;
  want.insert(want.find("END:VCALENDAR"),
              "BEGIN:VEVENT\r\n"
              "RECURRENCE-ID;TZID=Europe/Berlin:20250129T090000\r\n"
              "STATUS:CANCELLED\r\n"
              "SUMMARY:Standup (cancelled)\r\n"
              "UID:weekly@example.org\r\n"
              "END:VEVENT\r\n");
  EXPECT_EQ(out, want);
  Record again = ParseOk(kCalendar, out);
  EXPECT_EQ(again.fields, fields);
  EXPECT_EQ(again.uid, "weekly@example.org");

  // Remove the other override with all its lines; change the alarm; add a property
  // to the master event, which goes before its first nested component.
  fields = record.fields;
  for (auto it = fields.begin(); it != fields.end();) {
    it = it->first.starts_with("VCALENDAR/VEVENT@") ? fields.erase(it) : std::next(it);
  }
  const std::string old_alarm =
      "BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT10M\nEND:VALARM";
  const std::string alarm_field = "VCALENDAR/VEVENT/VALARM/" + Hash(old_alarm);
  fields[alarm_field] = "BEGIN:VALARM\nACTION:AUDIO\nTRIGGER:-PT5M\nEND:VALARM";
  fields["VCALENDAR/VEVENT/LOCATION"] = "LOCATION:Room 1";
  out = RewriteOk(kCalendar, kRecurringEvent, fields);
  want = kRecurringEvent;
  want.erase(want.rfind("BEGIN:VEVENT"),
             want.rfind("END:VEVENT\r\n") + 12 - want.rfind("BEGIN:VEVENT"));
  want.replace(want.find("ACTION:DISPLAY\r\nTRIGGER:-PT10M"), 30,
               "ACTION:AUDIO\r\nTRIGGER:-PT5M");
  want.insert(want.find("BEGIN:VALARM"), "LOCATION:Room 1\r\n");
  EXPECT_EQ(out, want);
  again = ParseOk(kCalendar, out);
  fields[alarm_field.substr(0, alarm_field.rfind('/') + 1) + Hash(fields[alarm_field])] =
      fields[alarm_field];
  fields.erase(alarm_field);
  EXPECT_EQ(again.fields, fields);
}

TEST(RewriteRecordTest, RemovingATimeZoneDropsItsLines) {
  Record record = ParseOk(kCalendar, kRecurringEvent);
  record.fields.erase("VCALENDAR/VTIMEZONE/Europe%2FBerlin");
  const std::string out = RewriteOk(kCalendar, kRecurringEvent, record.fields);
  std::string want = kRecurringEvent;
  const size_t begin = want.find("BEGIN:VTIMEZONE");
  want.erase(begin, want.find("BEGIN:VEVENT") - begin);
  EXPECT_EQ(out, want);
}

TEST(RewriteRecordTest, RefusesFieldsThatAreNotARecord) {
  Record record = ParseOk(kContact, kContactText);
  FieldMap fields = record.fields;
  fields["VCARD/TEL/0123456789abcdef"] = "TEL:1\nTEL:2";
  EXPECT_EQ(RewriteRecord(kContact, kContactText, fields).status().code(),
            absl::StatusCode::kInvalidArgument);
  fields = record.fields;
  fields.erase("VCARD");
  EXPECT_EQ(RewriteRecord(kContact, kContactText, fields).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RewriteRecord(kContact, "not a vcard", record.fields).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------
// SerializeRecord.

TEST(SerializeRecordTest, Layout) {
  const FieldMap fields = {
      {"VCALENDAR", ""},
      {"VCALENDAR/PRODID", "PRODID:x"},
      {"VCALENDAR/VERSION", "VERSION:2.0"},
      {"VCALENDAR/VTIMEZONE/UTC", "BEGIN:VTIMEZONE\nTZID:UTC\nEND:VTIMEZONE"},
      {"VCALENDAR/VEVENT", ""},
      {"VCALENDAR/VEVENT/SUMMARY", "SUMMARY:s"},
      {"VCALENDAR/VEVENT/VALARM/0000000000000000",
       "BEGIN:VALARM\nTRIGGER:-PT1M\nEND:VALARM"},
      {"VCALENDAR/VEVENT/DTSTART", "DTSTART:20250101T090000Z"},
  };
  EXPECT_EQ(
      SerializeOk(kCalendar, fields),
      WithCr("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VTIMEZONE\nTZID:UTC\n"
             "END:VTIMEZONE\nBEGIN:VEVENT\nDTSTART:20250101T090000Z\nSUMMARY:s\n"
             "BEGIN:VALARM\nTRIGGER:-PT1M\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n"));
}

TEST(SerializeRecordTest, RefusesFieldsThatAreNotARecord) {
  const auto expect_invalid = [](RecordKind kind, const FieldMap& fields,
                                 std::string_view needle) {
    absl::StatusOr<std::string> out = SerializeRecord(kind, fields);
    ASSERT_FALSE(out.ok()) << *out;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(Message(out.status()).find(needle), std::string::npos) << out.status();
  };
  expect_invalid(kContact, {}, "no VCARD part");
  expect_invalid(kContact, {{"VCARD/FN", "FN:x"}}, "no VCARD part");
  expect_invalid(kContact, {{"VCARD", ""}, {"VCARD#2/FN", "FN:x"}}, "no part marker");
  expect_invalid(kContact, {{"VCALENDAR", ""}}, "not VCARD");
  expect_invalid(kContact, {{"VCARD", ""}, {"VCARD/X", ""}}, "not a part there");
  expect_invalid(kCalendar, {{"VCALENDAR", ""}, {"VCALENDAR/VTIMEZONE", ""}},
                 "not a part there");
  expect_invalid(
      kCalendar,
      {{"VCALENDAR", ""}, {"VCALENDAR/VEVENT", ""}, {"VCALENDAR/VEVENT/VALARM", ""}},
      "not a part there");
  expect_invalid(kCalendar, {{"VCALENDAR", ""}, {"VCALENDAR/VEVENT/1", ""}},
                 "no marker for its parent");
  expect_invalid(kCalendar,
                 {{"VCALENDAR", ""},
                  {"VCALENDAR/VEVENT/0000000000000000", "BEGIN:VEVENT\nEND:VEVENT"}},
                 "would be a part");
  expect_invalid(kContact, {{"VCARD", ""}, {"VCARD/FN", "fn:x"}}, "not canonical");
  expect_invalid(kContact, {{"VCARD", ""}, {"VCARD/FN", "FN:x\r\n"}}, "not canonical");
  expect_invalid(kContact, {{"VCARD", ""}, {"VCARD/FN", "FN:x\nFN:y"}}, "one property");
  expect_invalid(kContact, {{"VCARD", ""}, {"VCARD/FN", "FN"}}, "no ':'");
  expect_invalid(kContact,
                 {{"VCARD", ""}, {"VCARD/X/0000000000000000", "BEGIN:X\nEND:Y"}},
                 "END does not match");
  expect_invalid(kContact,
                 {{"VCARD", ""}, {"VCARD/X/0000000000000000", "BEGIN:X\nEND:X\nA:1"}},
                 "one component");
  expect_invalid(kContact,
                 {{"VCARD", ""}, {"VCARD/NOTE", "NOTE;ENCODING=QUOTED-PRINTABLE:a="}},
                 "ends with '='");
}

// ---------------------------------------------------------------------------------
// Bookkeeping fields and value text.

TEST(BookkeepingTest, FieldsAndMerge) {
  EXPECT_TRUE(IsBookkeepingField("VCARD/REV"));
  EXPECT_TRUE(IsBookkeepingField("VCALENDAR/PRODID"));
  EXPECT_TRUE(IsBookkeepingField("VCALENDAR/VEVENT:x@1/SEQUENCE"));
  EXPECT_TRUE(IsBookkeepingField("VCALENDAR/VEVENT/DTSTAMP"));
  EXPECT_TRUE(IsBookkeepingField("VCALENDAR/VTODO/LAST-MODIFIED"));
  EXPECT_FALSE(IsBookkeepingField("VCARD/FN"));
  EXPECT_FALSE(IsBookkeepingField("VCARD/REV/0123456789abcdef"));
  EXPECT_FALSE(IsBookkeepingField("VCALENDAR/VTIMEZONE/REV"));
  EXPECT_FALSE(IsBookkeepingField("REV"));

  EXPECT_EQ(MergeBookkeeping("VCALENDAR/VEVENT/SEQUENCE", "SEQUENCE:9", "SEQUENCE:10"),
            "SEQUENCE:10");
  EXPECT_EQ(MergeBookkeeping("VCALENDAR/VEVENT/SEQUENCE", "SEQUENCE:10", "SEQUENCE:9"),
            "SEQUENCE:10");
  EXPECT_EQ(MergeBookkeeping("VCALENDAR/VEVENT/SEQUENCE", "SEQUENCE:x", "SEQUENCE:0"),
            "SEQUENCE:0");
  EXPECT_EQ(MergeBookkeeping("VCALENDAR/VEVENT/DTSTAMP", "DTSTAMP:20250102T000000Z",
                             "DTSTAMP:20250101T235959Z"),
            "DTSTAMP:20250102T000000Z");
  EXPECT_EQ(MergeBookkeeping("VCARD/REV", "REV:2024", "REV:2025"), "REV:2025");
  // Equal value text: the same answer either way round.
  EXPECT_EQ(MergeBookkeeping("VCARD/REV", "REV;X=a:1", "REV;X=b:1"),
            MergeBookkeeping("VCARD/REV", "REV;X=b:1", "REV;X=a:1"));
}

TEST(FieldValueTextTest, ValuePartAfterQuotedParameters) {
  EXPECT_EQ(FieldValueText("FN:Ada"), "Ada");
  EXPECT_EQ(FieldValueText("item1.TEL;TYPE=home:+1"), "+1");
  EXPECT_EQ(FieldValueText("ATTENDEE;CN=\"Doe: Jane\";ROLE=CHAIR:mailto:j@x"),
            "mailto:j@x");
  EXPECT_EQ(FieldValueText("X;A=\"a:b\",\"c;d\";B:v:w"), "v:w");
  EXPECT_EQ(FieldValueText("NOTE:"), "");
  EXPECT_EQ(FieldValueText("BEGIN:VALARM\nEND:VALARM"), "");
  EXPECT_EQ(FieldValueText(""), "");

  EXPECT_EQ(WithFieldValueText("ATTENDEE;CN=\"Doe: Jane\":mailto:j@x", "mailto:k@y"),
            "ATTENDEE;CN=\"Doe: Jane\":mailto:k@y");
  EXPECT_EQ(WithFieldValueText("FN:Ada", "Ada L."), "FN:Ada L.");
  EXPECT_EQ(WithFieldValueText("BEGIN:VALARM\nEND:VALARM", "x"),
            "BEGIN:VALARM\nEND:VALARM");
  // The result is canonical text again.
  Record record = ParseOk(kContact, "BEGIN:VCARD\nX-A;P=\"1:2\":old\nEND:VCARD\n");
  const std::string key = "VCARD/X-A/" + Hash("X-A;P=\"1:2\":old");
  record.fields[key] = WithFieldValueText(record.fields[key], "new");
  EXPECT_EQ(record.fields[key], "X-A;P=\"1:2\":new");
  EXPECT_TRUE(SerializeRecord(kContact, record.fields).ok());
}

// ---------------------------------------------------------------------------------
// Corpus: real files from ez-vcard and python icalendar (tests/testdata/pim/README.md).

// Files ParseRecord refuses, with the start of the error.
const std::map<std::string, std::string>& MalformedCorpusFiles() {
  static const auto* files = new std::map<std::string, std::string>{
      // Content-line errors; see content_line_test.cc.
      {"icalendar/calendars/fuzz_testcase_0_char_in_component_name.ics",
       "line 1: NUL byte"},
      {"icalendar/calendars/fuzz_testcase_vtimezone_lone_cr.ics", "line 3: no ':'"},
      {"icalendar/calendars/issue_104_broken_calendar.ics", "line 13: no ':'"},
      {"icalendar/calendars/issue_168_input.ics", "line 6: no ':'"},
      {"icalendar/calendars/issue_348_exception_parsing_value.ics", "line 8: no ':'"},
      {"icalendar/calendars/timezone_rdate.ics", "line 53: no ':'"},
      {"icalendar/events/issue_104_mark_events_broken.ics", "line 9: no ':'"},
      // Structure: cut off before END:VCALENDAR (python icalendar's "bad calendar"
      // tests).
      {"icalendar/calendars/big_bad_calendar.ics", "line 1: missing END:VCALENDAR"},
      {"icalendar/calendars/small_bad_calendar.ics", "line 1: missing END:VCALENDAR"},
      {"icalendar/calendars/pr_480_summary_with_colon.ics",
       "line 1: missing END:VCALENDAR"},
      // A fuzzer case: "BEGIN:V", a broken RRULE, no END.
      {"icalendar/calendars/fuzz_testcase_invalid_month.ics",
       "line 1: top-level component V in a calendar file"},
      // "END:VCALENDARD".
      {"icalendar/calendars/timezone_same_start_and_offset.ics",
       "line 23: END:VCALENDARD does not match BEGIN:VCALENDAR"},
      // An X-COMMENT line after END:VCALENDAR.
      {"icalendar/calendars/issue_350.ics", "line 36: text after END:VCALENDAR"},
  };
  return *files;
}

// Python icalendar's tests also hold bare components (VEVENT, VTODO, VALARM,
// VTIMEZONE, custom ones, ... at the top level), which are not calendar files:
// ParseRecord refuses them ("top-level component VEVENT in a calendar file (want
// VCALENDAR)"), and the corpus test checks them wrapped in a VCALENDAR instead.
constexpr size_t kBareComponentFiles = 49;

std::string ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::vector<std::filesystem::path> CorpusFiles(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    const std::string extension = entry.path().extension().string();
    if (entry.is_regular_file() && (extension == ".vcf" || extension == ".ics")) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// `text` inside BEGIN:VCALENDAR ... END:VCALENDAR, BOM first.
std::string WrapInVcalendar(std::string text) {
  const bool bom = text.starts_with("\xEF\xBB\xBF");
  if (bom) text.erase(0, 3);
  const std::string ending = text.find("\r\n") != std::string::npos ? "\r\n" : "\n";
  if (!text.empty() && text.back() != '\n' && text.back() != '\r') text += ending;
  return (bom ? "\xEF\xBB\xBF" : "") + ("BEGIN:VCALENDAR" + ending) + text +
         "END:VCALENDAR" + ending;
}

void ExpectCorpusRoundTrips(RecordKind kind, const std::string& text) {
  absl::StatusOr<Record> record = ParseRecord(kind, text);
  ASSERT_TRUE(record.ok()) << record.status();
  // (a) Nothing changed, nothing rewritten.
  absl::StatusOr<std::string> rewritten = RewriteRecord(kind, text, record->fields);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_TRUE(*rewritten == text) << "rewrite differs";
  // (b), (c) A new file with the same fields parses to them and to the same UID.
  ExpectSerializeRoundTrip(kind, *record);
  // And the new file rewritten to the original's fields stays as it is.
  absl::StatusOr<std::string> serialized = SerializeRecord(kind, record->fields);
  ASSERT_TRUE(serialized.ok());
  EXPECT_EQ(RewriteOk(kind, *serialized, record->fields), *serialized);
}

TEST(CorpusTest, EveryFileParsesAndRoundTrips) {
  const std::filesystem::path root = std::filesystem::path(FERRY_TESTDATA_DIR) / "pim";
  const std::vector<std::filesystem::path> files = CorpusFiles(root);
  EXPECT_EQ(files.size(), 18u + 163u);
  size_t malformed_seen = 0;
  size_t bare_seen = 0;
  size_t parsed = 0;
  for (const std::filesystem::path& path : files) {
    const std::string name = path.lexically_relative(root).generic_string();
    SCOPED_TRACE(name);
    const RecordKind kind = path.extension() == ".vcf" ? kContact : kCalendar;
    const std::string text = ReadFileBytes(path);
    absl::StatusOr<Record> record = ParseRecord(kind, text);
    if (auto it = MalformedCorpusFiles().find(name); it != MalformedCorpusFiles().end()) {
      ++malformed_seen;
      ASSERT_FALSE(record.ok());
      EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_TRUE(Message(record.status()).starts_with(it->second)) << record.status();
      continue;
    }
    if (!record.ok() && kind == kCalendar &&
        Message(record.status()).find("in a calendar file (want VCALENDAR)") !=
            std::string::npos) {
      ++bare_seen;
      ExpectCorpusRoundTrips(kind, WrapInVcalendar(text));
      continue;
    }
    ++parsed;
    ExpectCorpusRoundTrips(kind, text);
  }
  EXPECT_EQ(malformed_seen, MalformedCorpusFiles().size());
  EXPECT_EQ(bare_seen, kBareComponentFiles);
  EXPECT_EQ(parsed, files.size() - malformed_seen - bare_seen);
  std::cout << "corpus: " << parsed << " files round-trip, " << bare_seen
            << " bare components round-trip wrapped, " << malformed_seen
            << " malformed\n";
}

TEST(CorpusTest, SpotChecks) {
  const std::filesystem::path root = std::filesystem::path(FERRY_TESTDATA_DIR) / "pim";
  Record iphone =
      ParseOk(kContact, ReadFileBytes(root / "ez-vcard/io/text/John_Doe_IPHONE.vcf"));
  // "\r\r\n" line endings.
  EXPECT_EQ(iphone.fields["VCARD/FN"], "FN:Mr. John Richter James Doe Sr.");
  const std::string bom_text =
      ReadFileBytes(root / "icalendar/calendars/bom_calendar.ics");
  ASSERT_TRUE(bom_text.starts_with("\xEF\xBB\xBF"));
  Record bom = ParseOk(kCalendar, bom_text);
  EXPECT_EQ(bom.fields, (FieldMap{{"VCALENDAR", ""}}));
  bom.fields["VCALENDAR/VERSION"] = "VERSION:2.0";
  EXPECT_EQ(RewriteOk(kCalendar, bom_text, bom.fields),
            "\xEF\xBB\xBF"
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n");
}

// ---------------------------------------------------------------------------------
// Speed: a typical 1 KiB vCard. Prints the time per parse; no limit is asserted.

}  // namespace
}  // namespace ferry::pim
