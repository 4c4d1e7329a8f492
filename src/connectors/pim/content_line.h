// The content-line layer shared by the vCard (RFC 6350 §3; vCard 2.1 and 3.0 as found
// in the wild) and iCalendar (RFC 5545 §3.1) connectors: splitting a file into logical
// lines, parsing each into group, name, parameters and value, serializing lines back,
// and the value encodings that are common to both formats.
//
// Parsing keeps the exact bytes of every logical line (`ContentLine::raw`), so a file
// can be written back byte for byte with only the lines that changed re-serialized.
#ifndef FERRY_CONNECTORS_PIM_CONTENT_LINE_H_
#define FERRY_CONNECTORS_PIM_CONTENT_LINE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::pim {

// Limits of the PIM connectors. They live here rather than in src/core/limits.h
// because this module may not edit that file; they may move there later.
//
// One .vcf or .ics file, BOM included.
inline constexpr size_t kPimFileBytesMax = 16u << 20;
// One logical line after unfolding; large enough for an inline base64 PHOTO.
inline constexpr size_t kContentLineBytesMax = 10u << 20;
// Logical lines in one file.
inline constexpr size_t kContentLinesMax = 100000;
// Octets per physical line that SerializeContentLine writes, line ending excluded
// (RFC 5545 §3.1, RFC 6350 §3.2).
inline constexpr size_t kFoldOctets = 75;

// One parameter of a content line.
struct Param {
  // As written (case kept); compare case-insensitively. May be empty for the
  // malformed but harmless "DTSTART;;VALUE=DATE:..." (kept as a bare parameter).
  std::string name;
  // Comma-separated values, each with its quotes removed and RFC 6868 escapes (^n ^^ ^')
  // decoded. A quoted value is one value even if it contains commas: `TYPE="a,b"` has the
  // single value "a,b" (splitting vCard TYPE further is the vCard connector's business).
  // Empty for a bare vCard 2.1 parameter such as HOME in "TEL;HOME;VOICE:..."; then
  // `name` holds the bare word. `NAME=` has one empty value.
  std::vector<std::string> values;
  // True when at least one value was written in double quotes; the serializer then
  // quotes every value, so that untouched parameters keep their look.
  bool quoted = false;

  friend bool operator==(const Param&, const Param&) = default;
};

struct ContentLine {
  // "item1" in "item1.TEL"; empty when there is none.
  std::string group;
  // As written (case kept); compare case-insensitively. Never empty.
  std::string name;
  std::vector<Param> params;
  // The value text after the first unquoted ':', unfolded but NOT unescaped (escaping is
  // property-specific: see UnescapeText, SplitEscaped, DecodeQuotedPrintable). For
  // quoted-printable values, soft line breaks ("=" at the end of a physical line) are
  // removed together with the '=', so the value is plain quoted-printable text.
  std::string value;
  // The exact original bytes of this logical line: folds, QP soft breaks and line
  // ending included, plus any blank lines that follow it (and, for the first line, any
  // blank lines before it). Concatenating `raw` of all lines gives the input back,
  // BOM excluded. Empty for lines made by code rather than parsed.
  std::string raw;
};

// Field-wise equality of group, name, params and value; `raw` is ignored.
bool SameContent(const ContentLine& a, const ContentLine& b);

struct ParsedText {
  std::vector<ContentLine> lines;
  // The input started with a UTF-8 byte order mark (not part of any `raw`).
  bool had_bom = false;
  // "\r\n" or "\n": the first line ending in the input. A CR-only ending, a "\r\r\n"
  // ending and input without any line ending all report "\r\n".
  std::string line_ending = "\r\n";
};

// Splits `text` into logical lines and parses each one.
//
// - A leading UTF-8 BOM is stripped (had_bom).
// - Line endings: LF, or a run of CRs optionally followed by LF, ends one physical line
//   (CRLF, LF, lone CR, and the "\r\r\n" some iPhone exports write). Line numbers in
//   errors count physical lines so defined.
// - Unfolding: a physical line starting with a space or horizontal tab continues the
//   previous one; the line ending and that one whitespace character are removed.
// - Blank lines are ignored (their bytes stay in `raw`), also between a line and its
//   continuation. A whitespace-only line is a continuation line like any other.
// - vCard 2.1 quoted-printable soft breaks: when a line has ENCODING=QUOTED-PRINTABLE
//   (or a bare QUOTED-PRINTABLE parameter) and, after unfolding, ends with '=', the '='
//   is removed and the next physical line is appended as is (even when blank). Folding
//   takes precedence: if the next physical line starts with whitespace it is a fold.
// - Syntax: [group "."] name *(";" param) ":" value, where param is
//   name ["=" value *("," value)] and a value is either quoted ("...", no '"' inside)
//   or unquoted (up to the next ',', ';' or ':'; a '"' inside it is kept). The group is
//   whatever precedes the first '.' of the name. Names are otherwise taken as written,
//   even with spaces (seen in the wild).
// - Encoding: NUL bytes are rejected. Group, name and parameters must be valid UTF-8;
//   the value must be too, unless the line has an ENCODING or CHARSET parameter (vCard
//   2.1 8-bit values, to be handled with DecodeQuotedPrintable and ToUtf8).
//
// Errors: INVALID_ARGUMENT "line N: reason" (N is the 1-based physical line where the
// logical line starts, or where the offending byte is) for a line without ':', a
// continuation line before any content line, an empty group or name, bad quoting,
// control characters in a group or name, a NUL byte or invalid UTF-8.
// RESOURCE_EXHAUSTED when the input exceeds kPimFileBytesMax, a logical line exceeds
// kContentLineBytesMax or there are more than kContentLinesMax lines.
//
// Input consisting of blank lines only yields no lines (and its bytes are dropped).
absl::StatusOr<ParsedText> ParseContentLines(std::string_view text);

// Serializes one line from group, name, params and value (`raw` is ignored), ending with
// `line_ending`, folded so that no physical line exceeds kFoldOctets octets before its
// ending; continuation lines start with one space, and a UTF-8 sequence is never split.
// Parameter values are RFC 6868-escaped ('^' -> "^^", '"' -> "^'", CR LF / LF / CR ->
// "^n") and double-quoted when they contain ':', ';' or ',' or when `Param::quoted`.
// A parameter with no values is written as a bare word.
// Preconditions (not checked): group, name, parameter names and value contain no CR,
// LF or NUL; name is not empty and does not start with whitespace. Quoted-printable
// values are folded like any other value, not with soft breaks.
std::string SerializeContentLine(const ContentLine& line, std::string_view line_ending);
// Appends `line` to `out` as SerializeContentLine writes it before folding: one line,
// no line ending. Same preconditions.
void AppendUnfoldedContentLine(std::string& out, const ContentLine& line);

// TEXT value escaping (RFC 6350 §3.4, RFC 5545 §3.3.11): '\' ';' ',' get a backslash,
// and a newline (CR LF, LF or lone CR) becomes "\n".
std::string EscapeText(std::string_view text);
// The inverse: "\\" "\;" "\," "\:" and "\n" / "\N" are decoded; any other backslash
// (an unknown escape, or a trailing backslash) is kept as is, as real files have them.
std::string UnescapeText(std::string_view text);

// Splits a structured (';') or multi-valued (',') value on each separator that is not
// escaped by a backslash, then unescapes each part with UnescapeText. Always returns at
// least one part ("" gives {""}; "a;" gives {"a", ""}).
std::vector<std::string> SplitEscaped(std::string_view value, char separator);
// Like SplitEscaped but leaves the parts escaped, for values that are split twice:
// the components of a vCard ADR are split on ';' and then each on ','.
std::vector<std::string_view> SplitEscapedRaw(std::string_view value, char separator);

// Decodes quoted-printable text (RFC 2045 §6.7) into bytes: "=XX" (hex, either case)
// gives one byte, "=" followed by a line break (CR LF, LF) or by the end of the text is
// a soft break and gives nothing, and every other byte is copied. INVALID_ARGUMENT for
// '=' followed by anything else.
absl::StatusOr<std::string> DecodeQuotedPrintable(std::string_view value);

// Converts `bytes` in `charset` (a CHARSET parameter value, case-insensitive, surrounding
// whitespace ignored) to UTF-8.
// - UTF-8 ("utf-8", "utf8", or an empty charset): checked, returned unchanged.
// - Windows-1252 ("windows-1252", "cp1252", "x-cp1252") and, as in the WHATWG Encoding
//   Standard and in mail clients, ISO-8859-1 ("iso-8859-1", "iso8859-1", "latin1", "l1",
//   ...) and US-ASCII ("us-ascii", "ascii"): real files labelled ISO-8859-1 or US-ASCII
//   that use bytes 0x80-0x9F mean the Windows-1252 characters (0x80 is the euro sign).
//   The five bytes Windows-1252 leaves undefined map to the C1 controls U+0081 etc.
// INVALID_ARGUMENT for other charsets and for invalid UTF-8.
absl::StatusOr<std::string> ToUtf8(std::string_view bytes, std::string_view charset);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points
// above U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace ferry::pim

#endif  // FERRY_CONNECTORS_PIM_CONTENT_LINE_H_
