#include "src/connectors/pim/content_line.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace ferry::pim {
namespace {

ContentLine Line(std::string group, std::string name, std::string value) {
  ContentLine line;
  line.group = std::move(group);
  line.name = std::move(name);
  line.value = std::move(value);
  return line;
}

Param MakeParam(std::string name, std::vector<std::string> values, bool quoted) {
  Param param;
  param.name = std::move(name);
  param.values = std::move(values);
  param.quoted = quoted;
  return param;
}

// Removes CRLF-space folds.
std::string Unfold(std::string text) {
  for (size_t at; (at = text.find("\r\n ")) != std::string::npos;) text.erase(at, 3);
  return text;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

ParsedText ParseOk(std::string_view text) {
  absl::StatusOr<ParsedText> parsed = ParseContentLines(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *std::move(parsed) : ParsedText{};
}

ContentLine ParseOne(std::string_view text) {
  ParsedText parsed = ParseOk(text);
  EXPECT_EQ(parsed.lines.size(), 1u) << text;
  return parsed.lines.empty() ? ContentLine{} : parsed.lines[0];
}

std::string JoinRaw(const ParsedText& parsed) {
  std::string out;
  for (const ContentLine& line : parsed.lines) out += line.raw;
  return out;
}

// Serializes every line, parses the result and expects the same lines back.
void ExpectSemanticRoundTrip(const ParsedText& parsed, const std::string& context) {
  std::string text;
  for (const ContentLine& line : parsed.lines) {
    text += SerializeContentLine(line, parsed.line_ending);
  }
  absl::StatusOr<ParsedText> again = ParseContentLines(text);
  ASSERT_TRUE(again.ok()) << context << ": " << again.status();
  ASSERT_EQ(again->lines.size(), parsed.lines.size()) << context;
  for (size_t i = 0; i < parsed.lines.size(); ++i) {
    EXPECT_TRUE(SameContent(again->lines[i], parsed.lines[i]))
        << context << " line " << i << ":\n"
        << parsed.lines[i].raw << "\nbecame\n"
        << again->lines[i].raw;
  }
}

void ExpectError(std::string_view text, absl::StatusCode code, std::string_view needle) {
  absl::StatusOr<ParsedText> parsed = ParseContentLines(text);
  ASSERT_FALSE(parsed.ok()) << text;
  EXPECT_EQ(parsed.status().code(), code) << parsed.status();
  EXPECT_NE(Message(parsed.status()).find(needle), std::string::npos)
      << "want \"" << needle << "\" in " << parsed.status();
}

// ---------------------------------------------------------------------------------
// Splitting and unfolding.

TEST(ParseContentLinesTest, SplitsCrlfLines) {
  ParsedText parsed = ParseOk("BEGIN:VCARD\r\nFN:Jane\r\nEND:VCARD\r\n");
  ASSERT_EQ(parsed.lines.size(), 3u);
  EXPECT_EQ(parsed.lines[1].name, "FN");
  EXPECT_EQ(parsed.lines[1].value, "Jane");
  EXPECT_EQ(parsed.lines[1].raw, "FN:Jane\r\n");
  EXPECT_EQ(parsed.line_ending, "\r\n");
  EXPECT_FALSE(parsed.had_bom);
}

TEST(ParseContentLinesTest, SplitsLfLinesAndReportsLf) {
  ParsedText parsed = ParseOk("A:1\nB:2");
  ASSERT_EQ(parsed.lines.size(), 2u);
  EXPECT_EQ(parsed.line_ending, "\n");
  EXPECT_EQ(parsed.lines[1].raw, "B:2");
}

TEST(ParseContentLinesTest, LoneCrAndDoubleCrEndLines) {
  ParsedText parsed = ParseOk("A:1\rB:2\r\r\nC:3\r\r\n x\r\r\n");
  ASSERT_EQ(parsed.lines.size(), 3u);
  EXPECT_EQ(parsed.lines[0].value, "1");
  EXPECT_EQ(parsed.lines[1].raw, "B:2\r\r\n");
  EXPECT_EQ(parsed.lines[2].value, "3x");
  EXPECT_EQ(parsed.line_ending, "\r\n");
}

TEST(ParseContentLinesTest, NoLineEndingDefaultsToCrlf) {
  EXPECT_EQ(ParseOk("A:1").line_ending, "\r\n");
  EXPECT_TRUE(ParseOk("").lines.empty());
}

TEST(ParseContentLinesTest, UnfoldsSpaceAndTabContinuations) {
  const std::string text =
      "DESCRIPTION:This is a lo\r\n ng description\r\n\t that exists\r\nX:y\r\n";
  ParsedText parsed = ParseOk(text);
  ASSERT_EQ(parsed.lines.size(), 2u);
  EXPECT_EQ(parsed.lines[0].value, "This is a long description that exists");
  EXPECT_EQ(parsed.lines[0].raw,
            "DESCRIPTION:This is a lo\r\n ng description\r\n\t that exists\r\n");
  EXPECT_EQ(JoinRaw(parsed), text);
}

TEST(ParseContentLinesTest, UnfoldsLfContinuationsAndRemovesOneSpaceOnly) {
  ContentLine line = ParseOne("NOTE:a\n  b\n");
  EXPECT_EQ(line.value, "a b");
}

TEST(ParseContentLinesTest, RejoinsFoldInsideUtf8Sequence) {
  // "é" is C3 A9, "€" E2 82 AC and U+1F600 F0 9F 98 80; every split point is tried.
  for (std::string character : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    for (size_t split = 1; split < character.size(); ++split) {
      const std::string text = "SUMMARY:caf" + character.substr(0, split) + "\r\n " +
                               character.substr(split) + "!\r\n";
      ContentLine line = ParseOne(text);
      EXPECT_EQ(line.value, "caf" + character + "!");
      EXPECT_EQ(line.raw, text);
    }
  }
}

TEST(ParseContentLinesTest, FoldedHeaderIsUnfolded) {
  ContentLine line = ParseOne("ATTENDEE;CN=\"Jo\r\n hn\";ROLE=CH\r\n AIR:mailto:j@x\r\n");
  EXPECT_EQ(line.name, "ATTENDEE");
  ASSERT_EQ(line.params.size(), 2u);
  EXPECT_EQ(line.params[0].values, std::vector<std::string>{"John"});
  EXPECT_EQ(line.params[1].values, std::vector<std::string>{"CHAIR"});
  EXPECT_EQ(line.value, "mailto:j@x");
}

TEST(ParseContentLinesTest, StripsBom) {
  ParsedText parsed = ParseOk(
      "\xEF\xBB\xBF"
      "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n");
  EXPECT_TRUE(parsed.had_bom);
  ASSERT_EQ(parsed.lines.size(), 2u);
  EXPECT_EQ(parsed.lines[0].name, "BEGIN");
  EXPECT_EQ(JoinRaw(parsed), "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n");
}

TEST(ParseContentLinesTest, BlankLinesStayInRaw) {
  const std::string text = "\r\n\r\nA:1\r\n\r\n\r\nB:2\r\n\r\n";
  ParsedText parsed = ParseOk(text);
  ASSERT_EQ(parsed.lines.size(), 2u);
  EXPECT_EQ(parsed.lines[0].raw, "\r\n\r\nA:1\r\n\r\n\r\n");
  EXPECT_EQ(parsed.lines[1].raw, "B:2\r\n\r\n");
  EXPECT_EQ(JoinRaw(parsed), text);
}

// ---------------------------------------------------------------------------------
// Group, name, parameters.

TEST(ParseContentLinesTest, ParsesGroupNameAndValueWithColons) {
  ContentLine line = ParseOne("item1.URL:http://example.com:80/a;b,c\r\n");
  EXPECT_EQ(line.group, "item1");
  EXPECT_EQ(line.name, "URL");
  EXPECT_TRUE(line.params.empty());
  EXPECT_EQ(line.value, "http://example.com:80/a;b,c");
}

TEST(ParseContentLinesTest, ParsesParameters) {
  ContentLine line =
      ParseOne("TEL;TYPE=work,voice;PREF=1;X-Q=\"a;b:c,d\",e;X-E=:tel:+1\r\n");
  EXPECT_EQ(line.value, "tel:+1");
  ASSERT_EQ(line.params.size(), 4u);
  EXPECT_EQ(line.params[0].name, "TYPE");
  EXPECT_EQ(line.params[0].values, (std::vector<std::string>{"work", "voice"}));
  EXPECT_FALSE(line.params[0].quoted);
  EXPECT_EQ(line.params[2].values, (std::vector<std::string>{"a;b:c,d", "e"}));
  EXPECT_TRUE(line.params[2].quoted);
  EXPECT_EQ(line.params[3].values, std::vector<std::string>{""});
}

TEST(ParseContentLinesTest, KeepsBareVcard21Parameters) {
  ContentLine line = ParseOne("TEL;HOME;VOICE:555\r\n");
  ASSERT_EQ(line.params.size(), 2u);
  EXPECT_EQ(line.params[0].name, "HOME");
  EXPECT_TRUE(line.params[0].values.empty());
  EXPECT_EQ(line.params[1].name, "VOICE");
  EXPECT_EQ(SerializeContentLine(line, "\r\n"), "TEL;HOME;VOICE:555\r\n");
}

TEST(ParseContentLinesTest, ToleratesEmptyParameterAndSpacesInNames) {
  ContentLine line = ParseOne("DTSTART;;VALUE=DATE-TIME:20140409T093000\n");
  ASSERT_EQ(line.params.size(), 2u);
  EXPECT_EQ(line.params[0].name, "");
  EXPECT_EQ(SerializeContentLine(line, "\n"),
            "DTSTART;;VALUE=DATE-TIME:20140409T093000\n");
  line = ParseOne("REFRESH - INTERVAL; VALUE = DURATION:PT48H\n");
  EXPECT_EQ(line.name, "REFRESH - INTERVAL");
  EXPECT_EQ(line.params[0].name, " VALUE ");
  EXPECT_EQ(line.params[0].values, std::vector<std::string>{" DURATION"});
}

TEST(ParseContentLinesTest, DecodesRfc6868) {
  ContentLine line = ParseOne(
      "X-PARAM;NEWLINE=^n;ALL=^^^'^n;UNKNOWN=^a^ ^asd;CN=\"George ^'Babe^' Ruth\":asd\n");
  ASSERT_EQ(line.params.size(), 4u);
  EXPECT_EQ(line.params[0].values, std::vector<std::string>{"\n"});
  EXPECT_EQ(line.params[1].values, std::vector<std::string>{"^\"\n"});
  EXPECT_EQ(line.params[2].values, std::vector<std::string>{"^a^ ^asd"});
  EXPECT_EQ(line.params[3].values, std::vector<std::string>{"George \"Babe\" Ruth"});
}

TEST(SerializeContentLineTest, QuotesAndEscapesParameterValues) {
  ContentLine line = Line("", "X", "v");
  line.params.push_back(MakeParam("A", {"plain", "has:colon", "has;semi"}, false));
  line.params.push_back(MakeParam("B", {"has,comma", "", "caret^n\"q\"\nnl\r\n"}, false));
  line.params.push_back(MakeParam("C", {"kept"}, true));
  line.params.push_back(MakeParam("D", {}, false));
  const std::string text = SerializeContentLine(line, "\r\n");
  EXPECT_EQ(Unfold(text),
            "X;A=plain,\"has:colon\",\"has;semi\";B=\"has,comma\",,caret^^n^'q^'^nnl^n;"
            "C=\"kept\";D:v\r\n");
  ContentLine again = ParseOne(text);
  ASSERT_EQ(again.params.size(), 4u);
  EXPECT_EQ(again.params[0].values, line.params[0].values);
  EXPECT_EQ(again.params[1].values,
            (std::vector<std::string>{"has,comma", "", "caret^n\"q\"\nnl\n"}));
  EXPECT_EQ(again.params[2], line.params[2]);
  EXPECT_EQ(again.params[3], line.params[3]);
}

TEST(SerializeContentLineTest, ParameterRoundTrip) {
  const std::vector<std::string> values = {"",  "a",  "a b", ":",  ";",  ",",   "\"",
                                           "^", "^^", "^n",  "^'", "\n", "é€😀", "x^"};
  for (const std::string& value : values) {
    for (bool quoted : {false, true}) {
      ContentLine line = Line("g", "N", "v:w");
      line.params.push_back(MakeParam("P", {value, value}, quoted));
      ContentLine again = ParseOne(SerializeContentLine(line, "\n"));
      // A value that needs quotes comes back marked as quoted.
      line.params[0].quoted = quoted || value.find_first_of(":;,") != std::string::npos;
      EXPECT_TRUE(SameContent(again, line))
          << "value \"" << value << "\" quoted " << quoted << ": "
          << SerializeContentLine(line, "\n");
    }
  }
}

// ---------------------------------------------------------------------------------
// Folding.

std::vector<std::string> PhysicalLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find("\r\n", begin);
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 2;
  }
  return lines;
}

TEST(SerializeContentLineTest, ShortLinesAreNotFolded) {
  ContentLine line = Line("", "SUMMARY", std::string(75 - 8, 'x'));
  EXPECT_EQ(SerializeContentLine(line, "\r\n"), "SUMMARY:" + line.value + "\r\n");
  line.value += "y";
  EXPECT_EQ(SerializeContentLine(line, "\r\n"),
            "SUMMARY:" + std::string(67, 'x') + "\r\n y\r\n");
}

TEST(SerializeContentLineTest, FoldsAt75OctetsWithoutSplittingUtf8) {
  for (std::string character : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    for (size_t offset = 0; offset < 80; ++offset) {
      std::string value(offset, 'a');
      for (int i = 0; i < 100; ++i) value += character;
      ContentLine line = Line("", "X", value);
      const std::string text = SerializeContentLine(line, "\r\n");
      const std::vector<std::string> physical = PhysicalLines(text);
      ASSERT_GT(physical.size(), 2u);
      for (size_t i = 0; i < physical.size(); ++i) {
        EXPECT_LE(physical[i].size(), kFoldOctets);
        if (i + 1 == physical.size()) break;
        EXPECT_GE(physical[i].size(), kFoldOctets - 3) << "folds as late as it can";
        const std::string content = i == 0 ? physical[i] : physical[i].substr(1);
        EXPECT_TRUE(IsValidUtf8(content)) << "offset " << offset << " line " << i;
        if (i > 0) {
          EXPECT_EQ(physical[i][0], ' ');
        }
      }
      EXPECT_EQ(ParseOne(text).value, value);
    }
  }
}

TEST(SerializeContentLineTest, FoldsNonUtf8BytesAtTheLimit) {
  ContentLine line = Line("", "X", std::string(200, '\x80'));
  const std::vector<std::string> physical =
      PhysicalLines(SerializeContentLine(line, "\r\n"));
  EXPECT_EQ(physical[0].size(), kFoldOctets);
  EXPECT_EQ(physical[1].size(), kFoldOctets);
}

TEST(SerializeContentLineTest, UsesTheGivenLineEnding) {
  ContentLine line = Line("", "X", std::string(100, 'v'));
  EXPECT_EQ(SerializeContentLine(line, "\n"),
            "X:" + std::string(73, 'v') + "\n " + std::string(27, 'v') + "\n");
}

// ---------------------------------------------------------------------------------
// Text values.

TEST(TextEscapingTest, EscapesAndUnescapes) {
  EXPECT_EQ(EscapeText("a\\b;c,d\ne\r\nf\rg:h"), "a\\\\b\\;c\\,d\\ne\\nf\\ng:h");
  EXPECT_EQ(UnescapeText("a\\\\b\\;c\\,d\\ne\\Nf\\:g"), "a\\b;c,d\ne\nf:g");
}

TEST(TextEscapingTest, KeepsUnknownAndTrailingBackslashes) {
  EXPECT_EQ(UnescapeText("C:\\temp\\x"), "C:\\temp\\x");
  EXPECT_EQ(UnescapeText("end\\"), "end\\");
}

TEST(TextEscapingTest, RoundTrips) {
  for (std::string_view text : {"", "plain", "\\", "\\\\n", ";,;,", "line1\nline2", "\\n",
                                "trailing\\", "é€😀;x"}) {
    EXPECT_EQ(UnescapeText(EscapeText(text)), text);
  }
}

TEST(SplitEscapedTest, SplitsOnUnescapedSeparators) {
  EXPECT_EQ(SplitEscaped("Doe;John;;Mr.\\;Dr.;", ';'),
            (std::vector<std::string>{"Doe", "John", "", "Mr.;Dr.", ""}));
  EXPECT_EQ(SplitEscaped("a\\,b,c\\\\,d\\n", ','),
            (std::vector<std::string>{"a,b", "c\\", "d\n"}));
  EXPECT_EQ(SplitEscaped("", ';'), std::vector<std::string>{""});
  EXPECT_EQ(SplitEscaped("x\\", ';'), std::vector<std::string>{"x\\"});
}

TEST(SplitEscapedTest, RawPartsCanBeSplitAgain) {
  const std::vector<std::string_view> parts =
      SplitEscapedRaw(";;Silicon Alley 5\\, Floor 2,Suite 1;NY", ';');
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(SplitEscaped(parts[2], ','),
            (std::vector<std::string>{"Silicon Alley 5, Floor 2", "Suite 1"}));
}

TEST(SplitEscapedTest, SplitOfEscapedJoinRoundTrips) {
  const std::vector<std::string> parts = {"a;b", "c,d", "", "e\\f", "g\nh"};
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined += ';';
    joined += EscapeText(parts[i]);
  }
  EXPECT_EQ(SplitEscaped(joined, ';'), parts);
}

// ---------------------------------------------------------------------------------
// vCard 2.1 quoted-printable and charsets.

TEST(QuotedPrintableTest, JoinsSoftLineBreaks) {
  const std::string text =
      "LABEL;WORK;ENCODING=QUOTED-PRINTABLE:Cresent moon drive=0D=0A=\r\n"
      "Albaney, New York  12345\r\nADR:x\r\n";
  ParsedText parsed = ParseOk(text);
  ASSERT_EQ(parsed.lines.size(), 2u);
  EXPECT_EQ(parsed.lines[0].value, "Cresent moon drive=0D=0AAlbaney, New York  12345");
  EXPECT_EQ(*DecodeQuotedPrintable(parsed.lines[0].value),
            "Cresent moon drive\r\nAlbaney, New York  12345");
  EXPECT_EQ(JoinRaw(parsed), text);
  ExpectSemanticRoundTrip(parsed, "soft breaks");
}

TEST(QuotedPrintableTest, SoftBreakJoinsABlankLineAndBareEncodingWorks) {
  ParsedText parsed = ParseOk(
      "ORG;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=91=\r\n\r\n"
      "NOTE;quoted-printable:a=\r\nb=\r\n\r\nEND:VCARD\r\n");
  ASSERT_EQ(parsed.lines.size(), 3u);
  EXPECT_EQ(parsed.lines[0].value, "=C3=91");
  EXPECT_EQ(parsed.lines[1].value, "ab");
  EXPECT_EQ(parsed.lines[2].name, "END");
}

TEST(QuotedPrintableTest, OnlyQuotedPrintableLinesHaveSoftBreaks) {
  ParsedText parsed = ParseOk("PHOTO;ENCODING=b:AAA=\r\nEND:VCARD\r\n");
  ASSERT_EQ(parsed.lines.size(), 2u);
  EXPECT_EQ(parsed.lines[0].value, "AAA=");
}

TEST(QuotedPrintableTest, FoldingWinsOverSoftBreak) {
  ContentLine line = ParseOne("NOTE;ENCODING=QUOTED-PRINTABLE:a=\r\n 3Db\r\n");
  EXPECT_EQ(line.value, "a=3Db");
}

TEST(QuotedPrintableTest, Decodes) {
  EXPECT_EQ(*DecodeQuotedPrintable("=C3=91=20a=3d=\r\nb=\nc="), "\xC3\x91 a=bc");
  EXPECT_EQ(*DecodeQuotedPrintable("no escapes\t"), "no escapes\t");
  EXPECT_EQ(*DecodeQuotedPrintable("=E9t=E9"), "\xE9t\xE9");
  for (std::string_view bad : {"=", "=G0", "=0", "x=zz", "=\r"}) {
    if (bad == "=") continue;  // a soft break at the end
    absl::StatusOr<std::string> decoded = DecodeQuotedPrintable(bad);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(*DecodeQuotedPrintable("="), "");
}

TEST(CharsetTest, ConvertsLatin1AndCp1252) {
  EXPECT_EQ(*ToUtf8("caf\xE9", "ISO-8859-1"), "caf\xC3\xA9");
  EXPECT_EQ(*ToUtf8("\xFF\xA0", "latin1"), "\xC3\xBF\xC2\xA0");
  EXPECT_EQ(*ToUtf8("\x80 \x93q\x94", "windows-1252"),
            "\xE2\x82\xAC \xE2\x80\x9Cq\xE2\x80\x9D");
  EXPECT_EQ(*ToUtf8("\x80", " CP1252 "), "\xE2\x82\xAC");
  EXPECT_EQ(*ToUtf8("\x81\x8D\x8F\x90\x9D", "cp1252"),
            "\xC2\x81\xC2\x8D\xC2\x8F\xC2\x90\xC2\x9D");
  // Labelled ISO-8859-1 or US-ASCII, 0x80-0x9F are read as Windows-1252 (WHATWG).
  EXPECT_EQ(*ToUtf8("\x80", "iso-8859-1"), "\xE2\x82\xAC");
  EXPECT_EQ(*ToUtf8("plain", "us-ascii"), "plain");
}

TEST(CharsetTest, ChecksUtf8AndRefusesUnknownCharsets) {
  EXPECT_EQ(*ToUtf8("\xC3\x91", "UTF-8"), "\xC3\x91");
  EXPECT_EQ(*ToUtf8("x", ""), "x");
  EXPECT_EQ(ToUtf8("\xC3", "utf-8").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToUtf8("x", "shift_jis").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CharsetTest, Vcard21EndToEnd) {
  ContentLine line =
      ParseOne("FN;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:Ren=E9\r\n");
  absl::StatusOr<std::string> bytes = DecodeQuotedPrintable(line.value);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*ToUtf8(*bytes, line.params[0].values[0]), "Ren\xC3\xA9");
  // Raw 8-bit text is accepted when the line declares a CHARSET.
  EXPECT_EQ(ParseOne("FN;CHARSET=ISO-8859-1:Ren\xE9\r\n").value, "Ren\xE9");
}

TEST(Utf8Test, Validates) {
  EXPECT_TRUE(IsValidUtf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  for (std::string_view bad : {"\x80", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80",
                               "\xF4\x90\x80\x80", "\xC3", "\xF8\x88\x80\x80\x80"}) {
    EXPECT_FALSE(IsValidUtf8(bad));
  }
}

// ---------------------------------------------------------------------------------
// Malformed input and limits.

TEST(ParseContentLinesErrorTest, NamesTheLine) {
  using absl::StatusCode::kInvalidArgument;
  ExpectError("A:1\r\nB:2\r\nX\r\nC:3\r\n", kInvalidArgument, "line 3: no ':'");
  ExpectError(" A:1\r\n", kInvalidArgument, "line 1: continuation line");
  ExpectError("\r\n\r\n\tA:1\r\n", kInvalidArgument, "line 3: continuation line");
  ExpectError("A:1\nB;X=\"unterminated:2\n", kInvalidArgument,
              "line 2: unterminated quoted");
  ExpectError("A:1\nB;X=\"q\"r:2\n", kInvalidArgument, "line 2: text after a quoted");
  ExpectError("A:1\nB;X\"=1:2\n", kInvalidArgument, "line 2: '\"' in a parameter name");
  ExpectError("A:1\nB;X=1\n", kInvalidArgument, "line 2: no ':'");
  ExpectError("A:1\n:2\n", kInvalidArgument, "line 2: empty property name");
  ExpectError("A:1\n.B:2\n", kInvalidArgument, "line 2: empty group");
  ExpectError("A:1\ng.:2\n", kInvalidArgument, "line 2: empty property name");
  ExpectError("A:1\nB\x01:2\n", kInvalidArgument, "line 2: control character");
}

TEST(ParseContentLinesErrorTest, RejectsNulBytes) {
  using namespace std::string_literals;
  ExpectError("A:1\r\nB:2\r\nC:x\0y\r\n"s, absl::StatusCode::kInvalidArgument,
              "line 3: NUL byte");
  ExpectError("BeGIN:\0\n"s, absl::StatusCode::kInvalidArgument, "line 1: NUL byte");
}

TEST(ParseContentLinesErrorTest, RejectsInvalidUtf8OutsideEncodedValues) {
  using absl::StatusCode::kInvalidArgument;
  ExpectError("A:1\nB:caf\xE9\n", kInvalidArgument, "line 2: invalid UTF-8");
  ExpectError("A;X=\xE9:1\n", kInvalidArgument, "line 1: invalid UTF-8");
  ExpectError("A\xE9:1\n", kInvalidArgument, "line 1: invalid UTF-8");
  // A fold inside a sequence is fine, but the rejoined text must be valid.
  ExpectError("A:1\nB:caf\xC3\r\n x\n", kInvalidArgument, "line 2: invalid UTF-8");
  EXPECT_EQ(ParseOne("PHOTO;ENCODING=8BIT:\xFF\xFE\n").value, "\xFF\xFE");
  EXPECT_EQ(ParseOne("NOTE;QUOTED-PRINTABLE:\xE9\n").value, "\xE9");
}

TEST(ParseContentLinesLimitsTest, RefusesOversizedFiles) {
  std::string text = "X:" + std::string(kPimFileBytesMax - 4, 'a') + "\r\n";
  EXPECT_EQ(text.size(), kPimFileBytesMax);
  // Exactly at the file limit, but over the line limit.
  ExpectError(text, absl::StatusCode::kResourceExhausted, "line 1: longer than");
  text.push_back('\n');
  ExpectError(text, absl::StatusCode::kResourceExhausted, "larger than");
}

TEST(ParseContentLinesLimitsTest, LineLimitCountsUnfoldedBytes) {
  const std::string value(kContentLineBytesMax - 2, 'a');
  EXPECT_EQ(ParseOne("X:" + value + "\n").value.size(), value.size());
  // The same line folded: raw is larger than the limit, the unfolded line is not.
  ContentLine line = Line("", "X", value);
  const std::string folded = SerializeContentLine(line, "\r\n");
  EXPECT_GT(folded.size(), kContentLineBytesMax);
  EXPECT_EQ(ParseOne(folded).value.size(), value.size());
  ExpectError("A:1\nX:" + value + "\r\n a\r\n", absl::StatusCode::kResourceExhausted,
              "line 2: longer than");
}

TEST(ParseContentLinesLimitsTest, RefusesTooManyLines) {
  std::string text;
  for (size_t i = 0; i < kContentLinesMax; ++i) text += "X:1\n";
  absl::StatusOr<ParsedText> parsed = ParseContentLines(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->lines.size(), kContentLinesMax);
  text += "X:1\n";
  ExpectError(text, absl::StatusCode::kResourceExhausted, "content lines");
}

// ---------------------------------------------------------------------------------
// Corpus: real files from ez-vcard and python icalendar (tests/testdata/pim/README.md).

// Files in the corpus that are malformed on purpose, with the reason and the start of
// the expected error.
const std::map<std::string, std::string>& MalformedCorpusFiles() {
  static const auto* files = new std::map<std::string, std::string>{
      // A fuzzer case: "BeGIN:" followed by a NUL byte.
      {"icalendar/calendars/fuzz_testcase_0_char_in_component_name.ics",
       "line 1: NUL byte"},
      // A fuzzer case: a lone CR inside a TZID value ends the line, and what follows
      // (form feeds and a vertical tab) has no ':'.
      {"icalendar/calendars/fuzz_testcase_vtimezone_lone_cr.ics", "line 3: no ':'"},
      // A line that is just "X", no ':' (python icalendar marks the event broken).
      {"icalendar/calendars/issue_104_broken_calendar.ics", "line 13: no ':'"},
      // "X-APPLE-RADIUS=49.91307046514149": '=' where ':' belongs (python icalendar
      // drops the line; see issue_168_expected_output.ics).
      {"icalendar/calendars/issue_168_input.ics", "line 6: no ':'"},
      // "ORGANIZER;CN=Sixt SE" and "X-ORGANIZER2;CN=Sixt SE;CN2=Test!": no ':'.
      {"icalendar/calendars/issue_348_exception_parsing_value.ics", "line 8: no ':'"},
      // "SUMMARY=testevent": '=' where ':' belongs.
      {"icalendar/calendars/timezone_rdate.ics", "line 53: no ':'"},
      // A line that is just "X", as in issue_104_broken_calendar.ics.
      {"icalendar/events/issue_104_mark_events_broken.ics", "line 9: no ':'"},
  };
  return *files;
}

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

TEST(CorpusTest, EveryFileParsesAndRoundTrips) {
  const std::filesystem::path root = std::filesystem::path(FERRY_TESTDATA_DIR) / "pim";
  const std::vector<std::filesystem::path> files = CorpusFiles(root);
  EXPECT_EQ(files.size(), 18u + 163u);
  size_t malformed_seen = 0;
  for (const std::filesystem::path& path : files) {
    const std::string name = path.lexically_relative(root).generic_string();
    SCOPED_TRACE(name);
    std::string text = ReadFileBytes(path);
    absl::StatusOr<ParsedText> parsed = ParseContentLines(text);
    if (auto it = MalformedCorpusFiles().find(name); it != MalformedCorpusFiles().end()) {
      ++malformed_seen;
      EXPECT_FALSE(parsed.ok());
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_TRUE(Message(parsed.status()).starts_with(it->second)) << parsed.status();
      continue;
    }
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (!parsed.ok()) continue;
    if (parsed->had_bom) text.erase(0, 3);
    EXPECT_EQ(JoinRaw(*parsed), text);
    ExpectSemanticRoundTrip(*parsed, name);
  }
  EXPECT_EQ(malformed_seen, MalformedCorpusFiles().size());
}

TEST(CorpusTest, SpotChecks) {
  const std::filesystem::path root = std::filesystem::path(FERRY_TESTDATA_DIR) / "pim";
  ParsedText bom = ParseOk(ReadFileBytes(root / "icalendar/calendars/bom_calendar.ics"));
  EXPECT_TRUE(bom.had_bom);
  ParsedText iphone =
      ParseOk(ReadFileBytes(root / "ez-vcard/io/text/John_Doe_IPHONE.vcf"));
  EXPECT_EQ(iphone.line_ending, "\r\n");
  ASSERT_GT(iphone.lines.size(), 10u);
  EXPECT_EQ(iphone.lines[8].group, "item1");
  EXPECT_EQ(iphone.lines[8].name, "EMAIL");
  ParsedText android =
      ParseOk(ReadFileBytes(root / "ez-vcard/io/text/John_Doe_ANDROID.vcf"));
  for (const ContentLine& line : android.lines) {
    for (const Param& param : line.params) {
      if (param.name != "ENCODING" || param.values[0] != "QUOTED-PRINTABLE") continue;
      absl::StatusOr<std::string> decoded = DecodeQuotedPrintable(line.value);
      ASSERT_TRUE(decoded.ok()) << line.raw;
      EXPECT_TRUE(ToUtf8(*decoded, "UTF-8").ok() ||
                  line.raw.find("=80") != std::string::npos)
          << line.raw;
    }
  }
}

}  // namespace
}  // namespace ferry::pim
