#include "src/connectors/pim/content_line.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "absl/status/status.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::pim {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// ---------------------------------------------------------------------------------
// Small character helpers.

bool IsFoldSpace(char c) { return c == ' ' || c == '\t'; }

bool IsControl(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7F;
}

bool IsUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {  // the BMP is all this file needs
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

absl::Status LineError(size_t line_number, std::string_view reason) {
  return absl::InvalidArgumentError(StrCat("line ", line_number, ": ", reason));
}

// ---------------------------------------------------------------------------------
// Physical lines.

struct PhysicalLine {
  std::string_view content;  // without its line ending
  size_t end = 0;            // offset just past the line ending
};

// The physical line starting at `pos`: it ends at LF, or at a run of CRs optionally
// followed by LF.
PhysicalLine ReadPhysicalLine(std::string_view text, size_t pos) {
  // Two memchr scans are faster than one loop testing each byte for both.
  size_t i = std::min(text.find('\n', pos), text.size());
  i = std::min(text.substr(0, i).find('\r', pos), i);
  PhysicalLine line{text.substr(pos, i - pos), i};
  while (line.end < text.size() && text[line.end] == '\r') ++line.end;
  if (line.end < text.size() && text[line.end] == '\n') ++line.end;
  return line;
}

// The 1-based physical line number of byte `offset`.
size_t LineNumberAt(std::string_view text, size_t offset) {
  size_t number = 1;
  for (size_t pos = 0;; ++number) {
    pos = ReadPhysicalLine(text, pos).end;
    if (pos > offset || pos >= text.size()) return number;
  }
}

size_t CountLineFeeds(std::string_view text) {
  size_t count = 0;
  for (size_t at = text.find('\n'); at != std::string_view::npos;
       at = text.find('\n', at + 1)) {
    ++count;
  }
  return count;
}

std::string FirstLineEnding(std::string_view text) {
  const size_t at = text.find_first_of("\r\n");
  if (at != std::string_view::npos && text[at] == '\n') return "\n";
  return "\r\n";
}

// ---------------------------------------------------------------------------------
// Parsing one unfolded logical line.

// RFC 6868: ^n is a newline, ^^ a caret and ^' a double quote; any other caret is kept.
std::string DecodeParamValue(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '^' && i + 1 < text.size()) {
      const char next = text[i + 1];
      if (next == 'n' || next == '^' || next == '\'') {
        out.push_back(next == 'n' ? '\n' : next == '^' ? '^' : '"');
        ++i;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

// Parses "[group.]name *(;param):" of one logical line; the value is the rest.
class LineParser {
 public:
  explicit LineParser(std::string_view text) : text_(text) {}

  // Fills group, name, params and value. Errors carry the reason only.
  absl::Status Parse(ContentLine& line) {
    FERRY_RETURN_IF_ERROR(ParseName(line));
    while (text_[pos_] == ';') {
      ++pos_;
      FERRY_ASSIGN_OR_RETURN(Param param, ParseParam());
      line.params.push_back(std::move(param));
    }
    header_end_ = pos_;
    line.value = std::string(text_.substr(pos_ + 1));  // text_[pos_] is ':'
    return absl::OkStatus();
  }

  // The text before the ':' that starts the value; valid after Parse succeeded.
  std::string_view header() const { return text_.substr(0, header_end_); }

 private:
  // Advances to the first of `stops` at or after pos_; an error if there is none.
  absl::Status SkipTo(std::string_view stops) {
    pos_ = text_.find_first_of(stops, pos_);
    if (pos_ == std::string_view::npos) return absl::InvalidArgumentError("no ':'");
    return absl::OkStatus();
  }

  absl::Status ParseName(ContentLine& line) {
    FERRY_RETURN_IF_ERROR(SkipTo(";:"));
    std::string_view name = text_.substr(0, pos_);
    const size_t dot = name.find('.');
    if (dot != std::string_view::npos) {
      if (dot == 0) return absl::InvalidArgumentError("empty group");
      line.group = std::string(name.substr(0, dot));
      name.remove_prefix(dot + 1);
    }
    if (name.empty()) return absl::InvalidArgumentError("empty property name");
    for (char c : text_.substr(0, pos_)) {
      if (IsControl(c)) return absl::InvalidArgumentError("control character in name");
    }
    line.name = std::string(name);
    return absl::OkStatus();
  }

  absl::StatusOr<Param> ParseParam() {
    const size_t start = pos_;
    FERRY_RETURN_IF_ERROR(SkipTo("=;:\""));
    if (text_[pos_] == '"') {
      return absl::InvalidArgumentError("'\"' in a parameter name");
    }
    Param param;
    param.name = std::string(text_.substr(start, pos_ - start));
    if (text_[pos_] != '=') return param;  // a bare vCard 2.1 parameter
    do {
      ++pos_;  // '=' or ','
      FERRY_ASSIGN_OR_RETURN(std::string value, ParseParamValue(param.quoted));
      param.values.push_back(std::move(value));
    } while (text_[pos_] == ',');
    return param;
  }

  // One parameter value; leaves pos_ at the ',', ';' or ':' after it.
  absl::StatusOr<std::string> ParseParamValue(bool& quoted) {
    if (pos_ >= text_.size() || text_[pos_] != '"') {
      const size_t start = pos_;
      FERRY_RETURN_IF_ERROR(SkipTo(",;:"));
      return DecodeParamValue(text_.substr(start, pos_ - start));
    }
    const size_t close = text_.find('"', pos_ + 1);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated quoted parameter value");
    }
    std::string value = DecodeParamValue(text_.substr(pos_ + 1, close - pos_ - 1));
    pos_ = close + 1;
    if (pos_ >= text_.size()) return absl::InvalidArgumentError("no ':'");
    if (text_[pos_] != ',' && text_[pos_] != ';' && text_[pos_] != ':') {
      return absl::InvalidArgumentError("text after a quoted parameter value");
    }
    quoted = true;
    return value;
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t header_end_ = 0;
};

bool IsBareParam(const Param& param, std::string_view word) {
  return param.values.empty() && EqualsIgnoreCase(param.name, word);
}

bool IsQuotedPrintable(const ContentLine& line) {
  for (const Param& param : line.params) {
    if (IsBareParam(param, "QUOTED-PRINTABLE")) return true;
    if (!EqualsIgnoreCase(param.name, "ENCODING")) continue;
    for (const std::string& value : param.values) {
      if (EqualsIgnoreCase(value, "QUOTED-PRINTABLE")) return true;
    }
  }
  return false;
}

// Whether the value may hold bytes in some other encoding than UTF-8.
bool MayHoldNonUtf8Value(const ContentLine& line) {
  for (const Param& param : line.params) {
    if (EqualsIgnoreCase(param.name, "ENCODING") ||
        EqualsIgnoreCase(param.name, "CHARSET") ||
        IsBareParam(param, "QUOTED-PRINTABLE") || IsBareParam(param, "BASE64") ||
        IsBareParam(param, "8BIT")) {
      return true;
    }
  }
  return false;
}

// Whether `unfolded` so far is a quoted-printable line (a parse error means no).
bool IsQuotedPrintableText(std::string_view unfolded) {
  ContentLine line;
  return LineParser(unfolded).Parse(line).ok() && IsQuotedPrintable(line);
}

absl::StatusOr<ContentLine> ParseLogicalLine(std::string_view unfolded,
                                             size_t line_number) {
  ContentLine line;
  LineParser parser(unfolded);
  if (absl::Status status = parser.Parse(line); !status.ok()) {
    const absl::string_view reason = status.message();
    return LineError(line_number, std::string_view(reason.data(), reason.size()));
  }
  if (!IsValidUtf8(parser.header())) return LineError(line_number, "invalid UTF-8");
  if (!MayHoldNonUtf8Value(line) && !IsValidUtf8(line.value)) {
    return LineError(line_number, "invalid UTF-8 in the value");
  }
  return line;
}

// ---------------------------------------------------------------------------------
// Assembling logical lines from physical ones.

class LineAssembler {
 public:
  explicit LineAssembler(std::string_view text) : text_(text) { SkipBlankLines(); }

  bool AtEnd() const { return pos_ >= text_.size(); }

  // The next logical line. Precondition: !AtEnd().
  absl::StatusOr<ContentLine> Next() {
    const size_t first_line_number = line_number_;
    const PhysicalLine first = ReadPhysicalLine(text_, pos_);
    if (IsFoldSpace(first.content[0])) {
      return LineError(first_line_number, "continuation line with no line before it");
    }
    std::string unfolded(first.content);
    Consume(first);
    for (;;) {
      FERRY_RETURN_IF_ERROR(CheckSize(unfolded, first_line_number));
      if (AppendFold(unfolded)) continue;
      if (AppendSoftBreak(unfolded)) continue;
      break;
    }
    SkipBlankLines();
    FERRY_ASSIGN_OR_RETURN(ContentLine line,
                           ParseLogicalLine(unfolded, first_line_number));
    line.raw = std::string(text_.substr(raw_start_, pos_ - raw_start_));
    raw_start_ = pos_;
    return line;
  }

 private:
  void Consume(const PhysicalLine& line) {
    pos_ = line.end;
    ++line_number_;
  }

  void SkipBlankLines() {
    while (!AtEnd()) {
      const PhysicalLine line = ReadPhysicalLine(text_, pos_);
      if (!line.content.empty()) return;
      Consume(line);
    }
  }

  static absl::Status CheckSize(std::string_view unfolded, size_t line_number) {
    if (unfolded.size() <= kContentLineBytesMax) return absl::OkStatus();
    return absl::ResourceExhaustedError(
        StrCat("line ", line_number, ": longer than ", kContentLineBytesMax, " bytes"));
  }

  // Appends the next non-blank physical line if it is a continuation line.
  bool AppendFold(std::string& unfolded) {
    size_t pos = pos_;
    size_t line_number = line_number_;
    while (pos < text_.size()) {
      const PhysicalLine line = ReadPhysicalLine(text_, pos);
      if (!line.content.empty()) {
        if (!IsFoldSpace(line.content[0])) return false;
        unfolded.append(line.content.substr(1));
        pos_ = line.end;
        line_number_ = line_number + 1;
        return true;
      }
      pos = line.end;
      ++line_number;
    }
    return false;
  }

  // Joins the next physical line after a quoted-printable soft break.
  bool AppendSoftBreak(std::string& unfolded) {
    if (AtEnd() || unfolded.back() != '=' || !IsQuotedPrintableText(unfolded)) {
      return false;
    }
    const PhysicalLine line = ReadPhysicalLine(text_, pos_);
    unfolded.pop_back();
    unfolded.append(line.content);
    Consume(line);
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t raw_start_ = 0;
  size_t line_number_ = 1;
};

// ---------------------------------------------------------------------------------
// Serialization.

// RFC 6868-escapes `value` into `out`.
void AppendEncodedParamValue(std::string& out, std::string_view value) {
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '^') {
      out.append("^^");
    } else if (c == '"') {
      out.append("^'");
    } else if (c == '\r' || c == '\n') {
      out.append("^n");
      if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') ++i;
    } else {
      out.push_back(c);
    }
  }
}

bool NeedsQuotes(std::string_view value) {
  return value.find_first_of(":;,") != std::string_view::npos;
}

void AppendParam(std::string& out, const Param& param) {
  out.push_back(';');
  out.append(param.name);
  for (size_t i = 0; i < param.values.size(); ++i) {
    out.push_back(i == 0 ? '=' : ',');
    const bool quote = param.quoted || NeedsQuotes(param.values[i]);
    if (quote) out.push_back('"');
    AppendEncodedParamValue(out, param.values[i]);
    if (quote) out.push_back('"');
  }
}

// Where to end a physical line that starts at `begin` and may hold `room` octets of
// `flat`: at `begin + room`, moved back so that no UTF-8 sequence is split (unless the
// bytes there are not UTF-8 at all).
size_t FoldPoint(std::string_view flat, size_t begin, size_t room) {
  const size_t limit = begin + room;
  size_t cut = limit;
  while (cut > begin && limit - cut < 3 && IsUtf8Continuation(flat[cut])) --cut;
  return (cut == begin || IsUtf8Continuation(flat[cut])) ? limit : cut;
}

std::string Fold(std::string_view flat, std::string_view line_ending) {
  std::string out;
  out.reserve(flat.size() +
              (flat.size() / (kFoldOctets - 1) + 1) * (line_ending.size() + 1));
  size_t begin = 0;
  for (bool first = true;; first = false) {
    const size_t room = first ? kFoldOctets : kFoldOctets - 1;
    if (!first) out.push_back(' ');
    if (flat.size() - begin <= room) {
      out.append(flat.substr(begin));
      out.append(line_ending);
      return out;
    }
    const size_t cut = FoldPoint(flat, begin, room);
    out.append(flat.substr(begin, cut - begin));
    out.append(line_ending);
    begin = cut;
  }
}

// ---------------------------------------------------------------------------------
// Charsets.

// Windows-1252 bytes 0x80-0x9F; the undefined ones map to the C1 controls.
constexpr std::array<uint16_t, 32> kCp1252High = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

std::string Cp1252ToUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    AppendUtf8(out, byte >= 0x80 && byte < 0xA0 ? kCp1252High[byte - 0x80] : byte);
  }
  return out;
}

std::string NormalizeCharset(std::string_view charset) {
  while (!charset.empty() && IsFoldSpace(charset.front())) charset.remove_prefix(1);
  while (!charset.empty() && IsFoldSpace(charset.back())) charset.remove_suffix(1);
  std::string out(charset);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool IsOneOf(std::string_view label, std::initializer_list<std::string_view> labels) {
  for (std::string_view candidate : labels) {
    if (label == candidate) return true;
  }
  return false;
}

bool IsUtf8Label(std::string_view label) {
  return IsOneOf(label, {"", "utf-8", "utf8", "unicode-1-1-utf-8"});
}

bool IsCp1252Label(std::string_view label) {
  return IsOneOf(label,
                 {"windows-1252", "cp1252", "x-cp1252", "iso-8859-1", "iso8859-1",
                  "iso_8859-1", "iso88591", "iso_8859-1:1987", "latin1", "l1", "cp819",
                  "ibm819", "iso-ir-100", "us-ascii", "ascii", "ansi_x3.4-1968", "us"});
}

}  // namespace

bool SameContent(const ContentLine& a, const ContentLine& b) {
  return a.group == b.group && a.name == b.name && a.params == b.params &&
         a.value == b.value;
}

absl::StatusOr<ParsedText> ParseContentLines(std::string_view text) {
  if (text.size() > kPimFileBytesMax) {
    return absl::ResourceExhaustedError(
        StrCat("PIM file larger than ", kPimFileBytesMax, " bytes"));
  }
  ParsedText parsed;
  if (text.starts_with(kBom)) {
    parsed.had_bom = true;
    text.remove_prefix(kBom.size());
  }
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return LineError(LineNumberAt(text, nul), "NUL byte");
  }
  parsed.line_ending = FirstLineEnding(text);
  // Physical lines bound the logical ones; folded PHOTOs make far more of them.
  parsed.lines.reserve(std::min<size_t>(256, CountLineFeeds(text) + 1));
  LineAssembler assembler(text);
  while (!assembler.AtEnd()) {
    if (parsed.lines.size() == kContentLinesMax) {
      return absl::ResourceExhaustedError(
          StrCat("more than ", kContentLinesMax, " content lines"));
    }
    FERRY_ASSIGN_OR_RETURN(ContentLine line, assembler.Next());
    parsed.lines.push_back(std::move(line));
  }
  return parsed;
}

std::string SerializeContentLine(const ContentLine& line, std::string_view line_ending) {
  std::string flat;
  AppendUnfoldedContentLine(flat, line);
  return Fold(flat, line_ending);
}

void AppendUnfoldedContentLine(std::string& out, const ContentLine& line) {
  if (!line.group.empty()) out.append(line.group).push_back('.');
  out.append(line.name);
  for (const Param& param : line.params) AppendParam(out, param);
  out.push_back(':');
  out.append(line.value);
}

std::string EscapeText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' || c == ';' || c == ',') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\r' || c == '\n') {
      out.append("\\n");
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string UnescapeText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out.push_back(text[i]);
      continue;
    }
    const char next = text[i + 1];
    if (next == 'n' || next == 'N') {
      out.push_back('\n');
    } else if (next == '\\' || next == ';' || next == ',' || next == ':') {
      out.push_back(next);
    } else {
      out.push_back('\\');
      out.push_back(next);
    }
    ++i;
  }
  return out;
}

std::vector<std::string_view> SplitEscapedRaw(std::string_view value, char separator) {
  std::vector<std::string_view> parts;
  size_t begin = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\') {
      ++i;  // skips the escaped character
    } else if (value[i] == separator) {
      parts.push_back(value.substr(begin, i - begin));
      begin = i + 1;
    }
  }
  parts.push_back(value.substr(begin));
  return parts;
}

std::vector<std::string> SplitEscaped(std::string_view value, char separator) {
  std::vector<std::string> parts;
  for (std::string_view part : SplitEscapedRaw(value, separator)) {
    parts.push_back(UnescapeText(part));
  }
  return parts;
}

absl::StatusOr<std::string> DecodeQuotedPrintable(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '=') {
      out.push_back(value[i]);
      continue;
    }
    const std::string_view rest = value.substr(i + 1);
    if (rest.empty()) break;  // a soft break at the end
    if (rest.starts_with("\r\n") || rest.starts_with("\n")) {
      i += rest[0] == '\r' ? 2 : 1;
      continue;
    }
    const int high = HexDigit(rest[0]);
    const int low = rest.size() > 1 ? HexDigit(rest[1]) : -1;
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError(
          StrCat("bad quoted-printable escape at offset ", i));
    }
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

absl::StatusOr<std::string> ToUtf8(std::string_view bytes, std::string_view charset) {
  const std::string label = NormalizeCharset(charset);
  if (IsUtf8Label(label)) {
    if (!IsValidUtf8(bytes)) return absl::InvalidArgumentError("invalid UTF-8");
    return std::string(bytes);
  }
  if (IsCp1252Label(label)) return Cp1252ToUtf8(bytes);
  return absl::InvalidArgumentError(StrCat("unsupported charset \"", charset, "\""));
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    // ASCII eight bytes at a time.
    if (text.size() - i >= 8) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
      code_point = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      code_point = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      if (!IsUtf8Continuation(text[i + k])) return false;
      code_point = (code_point << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    const uint32_t min = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (code_point < min || code_point > 0x10FFFF) return false;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
    i += length;
  }
  return true;
}

}  // namespace ferry::pim
