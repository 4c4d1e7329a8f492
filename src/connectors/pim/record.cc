#include "src/connectors/pim/record.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "src/connectors/pim/content_line.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::pim {
namespace {

constexpr size_t kNone = static_cast<size_t>(-1);
constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Single-valued properties (record.h), sorted for binary search.
constexpr auto kVcardSingleValued = std::to_array<std::string_view>(
    {"ANNIVERSARY", "BDAY",     "CLASS", "FN",  "GENDER", "GEO",    "KIND", "LOGO",
     "N",           "NICKNAME", "NOTE",  "ORG", "PHOTO",  "PRODID", "REV",  "ROLE",
     "SORT-STRING", "SOUND",    "TITLE", "TZ",  "UID",    "VERSION"});
constexpr auto kIcalendarSingleValued =
    std::to_array<std::string_view>({"CALSCALE",      "CLASS",     "COLOR",
                                     "COMPLETED",     "CREATED",   "DESCRIPTION",
                                     "DTEND",         "DTSTAMP",   "DTSTART",
                                     "DUE",           "DURATION",  "GEO",
                                     "LAST-MODIFIED", "LOCATION",  "METHOD",
                                     "NAME",          "ORGANIZER", "PERCENT-COMPLETE",
                                     "PRIORITY",      "PRODID",    "RECURRENCE-ID",
                                     "RRULE",         "SEQUENCE",  "STATUS",
                                     "SUMMARY",       "TRANSP",    "UID",
                                     "URL",           "VERSION"});
static_assert(std::is_sorted(kVcardSingleValued.begin(), kVcardSingleValued.end()));
static_assert(std::is_sorted(kIcalendarSingleValued.begin(),
                             kIcalendarSingleValued.end()));

constexpr std::array<std::string_view, 5> kBookkeepingNames = {
    "DTSTAMP", "LAST-MODIFIED", "PRODID", "REV", "SEQUENCE"};

// ---------------------------------------------------------------------------------
// Small helpers.

char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

void UpperInPlace(std::string& text) {
  for (char& c : text) c = AsciiUpper(c);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiUpper(a[i]) != AsciiUpper(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

std::string UpperTrimmed(std::string_view text) {
  std::string out(Trim(text));
  UpperInPlace(out);
  return out;
}

bool IsBegin(const ContentLine& line) { return EqualsIgnoreCase(line.name, "BEGIN"); }
bool IsEnd(const ContentLine& line) { return EqualsIgnoreCase(line.name, "END"); }

std::string_view TopLevelName(RecordKind kind) {
  return kind == RecordKind::kContact ? "VCARD" : "VCALENDAR";
}

bool IsSingleValued(RecordKind kind, std::string_view upper_name) {
  if (kind == RecordKind::kContact) {
    return std::binary_search(kVcardSingleValued.begin(), kVcardSingleValued.end(),
                              upper_name);
  }
  return std::binary_search(kIcalendarSingleValued.begin(), kIcalendarSingleValued.end(),
                            upper_name);
}

// FNV-1a, 64 bits, as 16 lower-case hex digits.
void AppendHash(std::string& out, std::string_view text) { out += Hex64(Fnv1a64(text)); }

// Appends `text` with '%', the characters in `specials` and, when `text` is not valid
// UTF-8, every byte above 0x7F written as %XX.
void AppendEscaped(std::string& out, std::string_view text, std::string_view specials) {
  const bool escape_high = !IsValidUtf8(text);
  constexpr std::string_view kDigits = "0123456789ABCDEF";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '%' || specials.find(c) != std::string_view::npos ||
        (escape_high && byte >= 0x80)) {
      out.push_back('%');
      out.push_back(kDigits[byte >> 4]);
      out.push_back(kDigits[byte & 15]);
    } else {
      out.push_back(c);
    }
  }
}

// Component names in part paths; qualifiers (UID, RECURRENCE-ID, TZID) escape fewer.
constexpr std::string_view kNameSpecials = "/#:@";
constexpr std::string_view kQualifierSpecials = "/#";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
        HexValue(text[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// The offset of the ':' that starts the value of an unfolded content line, following
// the grammar of ParseContentLines; npos when there is none.
size_t ValueColon(std::string_view line) {
  size_t pos = line.find_first_of(";:");
  while (pos != std::string_view::npos && line[pos] == ';') {
    pos = line.find_first_of("=;:\"", pos + 1);
    if (pos == std::string_view::npos || line[pos] == '"') return std::string_view::npos;
    if (line[pos] != '=') continue;
    do {
      ++pos;  // '=' or ','
      if (pos < line.size() && line[pos] == '"') {
        pos = line.find('"', pos + 1);
        if (pos == std::string_view::npos) return pos;
        ++pos;
        if (pos >= line.size()) return std::string_view::npos;
      } else {
        pos = line.find_first_of(",;:", pos);
        if (pos == std::string_view::npos) return pos;
      }
    } while (line[pos] == ',');
  }
  return pos;
}

// The property name of an unfolded content line (group removed), as written.
std::string_view LineName(std::string_view line) {
  std::string_view name = line.substr(0, line.find_first_of(";:"));
  const size_t dot = name.find('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

// Physical line endings in `text`, counted as ParseContentLines counts them.
size_t CountLineEndings(std::string_view text) {
  size_t count = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++count;
    } else if (text[i] == '\r') {
      ++count;
      while (i + 1 < text.size() && text[i + 1] == '\r') ++i;
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    }
  }
  return count;
}

// The 1-based physical line where logical line `index` starts. Only used for errors.
size_t StartLineNumber(const ParsedText& parsed, size_t index) {
  assert(index < parsed.lines.size());
  size_t number = 1;
  for (size_t i = 0; i < index; ++i) number += CountLineEndings(parsed.lines[i].raw);
  if (index == 0) {  // the first raw starts with the blank lines before it
    const std::string_view raw = parsed.lines[0].raw;
    const size_t content = raw.find_first_not_of("\r\n");
    number += CountLineEndings(raw.substr(0, content));
  }
  return number;
}

absl::Status LineError(const ParsedText& parsed, size_t index, std::string_view reason) {
  return absl::InvalidArgumentError(
      StrCat("line ", StartLineNumber(parsed, index), ": ", reason));
}

// Upper-cases the property and parameter names of `line` and appends its canonical
// text to `out`.
void AppendCanonical(std::string& out, ContentLine& line) {
  UpperInPlace(line.name);
  for (Param& param : line.params) UpperInPlace(param.name);
  AppendUnfoldedContentLine(out, line);
}

bool IsQuotedPrintable(const ContentLine& line) {
  for (const Param& param : line.params) {
    if (param.values.empty() && EqualsIgnoreCase(param.name, "QUOTED-PRINTABLE")) {
      return true;
    }
    if (!EqualsIgnoreCase(param.name, "ENCODING")) continue;
    for (const std::string& value : param.values) {
      if (EqualsIgnoreCase(value, "QUOTED-PRINTABLE")) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------
// A parsed file: its lines, parts and fields, with the line ranges RewriteRecord needs.

struct PartInfo {
  std::string name;  // upper case
  size_t parent = kNone;
  size_t begin_line = 0;
  size_t end_line = kNone;
  size_t first_child_line = kNone;  // the first nested BEGIN, if any
  std::string uid;                  // unescaped and trimmed; "" when none
  std::string recurrence_id;        // as written; "" when none
  std::string path;
};

struct FieldInfo {
  size_t part = kNone;
  size_t first_line = 0;
  size_t last_line = kNone;  // == first_line for a property
  bool component = false;
  std::string key_name;  // upper-case property or component name
  std::string tzid;      // a VTIMEZONE's TZID
  std::string value;     // canonical text until it moves into the record
  FieldMap::const_iterator entry;
};

struct Analysis {
  ParsedText parsed;
  std::vector<PartInfo> parts;
  std::vector<FieldInfo> fields;
  Record record;
};

// One open BEGIN.
struct OpenComponent {
  std::string name;  // upper case
  size_t line = 0;
  size_t part = kNone;   // the part whose lines these are
  bool is_part = false;  // this component is that part
};

class Structurer {
 public:
  Structurer(RecordKind kind, Analysis& analysis)
      : kind_(kind), a_(analysis), lines_(analysis.parsed.lines) {}

  absl::Status Run() {
    a_.fields.reserve(lines_.size());
    for (size_t i = 0; i < lines_.size(); ++i) {
      ContentLine& line = lines_[i];
      if (IsBegin(line)) {
        FERRY_RETURN_IF_ERROR(Begin(i));
      } else if (IsEnd(line)) {
        FERRY_RETURN_IF_ERROR(End(i));
      } else {
        FERRY_RETURN_IF_ERROR(Property(i));
      }
    }
    if (!open_.empty()) {
      return LineError(a_.parsed, open_.back().line,
                       StrCat("missing END:", open_.back().name, " for this BEGIN"));
    }
    if (a_.parts.empty()) {
      return absl::InvalidArgumentError(StrCat("no BEGIN:", TopLevelName(kind_)));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Begin(size_t i) {
    std::string name = UpperTrimmed(lines_[i].value);
    if (name.empty()) return LineError(a_.parsed, i, "BEGIN without a component name");
    if (open_.empty()) {
      if (name != TopLevelName(kind_)) {
        return LineError(a_.parsed, i,
                         StrCat("top-level component ", name, " in a ",
                                kind_ == RecordKind::kContact ? "contact" : "calendar",
                                " file (want ", TopLevelName(kind_), ")"));
      }
      return OpenPart(i, std::move(name), kNone);
    }
    const size_t part = open_.back().part;
    if (component_field_ == kNone) {
      if (a_.parts[part].first_child_line == kNone) a_.parts[part].first_child_line = i;
      if (open_.size() == 1 && kind_ == RecordKind::kCalendar && name != "VTIMEZONE") {
        return OpenPart(i, std::move(name), part);
      }
      component_field_ = a_.fields.size();
      component_depth_ = open_.size();
      FieldInfo& field = a_.fields.emplace_back();
      field.part = part;
      field.first_line = i;
      field.component = true;
      field.key_name = name;
    }
    open_.push_back(OpenComponent{std::move(name), i, part, false});
    return absl::OkStatus();
  }

  absl::Status OpenPart(size_t i, std::string name, size_t parent) {
    const size_t index = a_.parts.size();
    PartInfo& part = a_.parts.emplace_back();
    part.name = name;
    part.parent = parent;
    part.begin_line = i;
    open_.push_back(OpenComponent{std::move(name), i, index, true});
    return absl::OkStatus();
  }

  absl::Status End(size_t i) {
    const std::string name = UpperTrimmed(lines_[i].value);
    if (open_.empty()) {
      return LineError(a_.parsed, i, StrCat("END:", name, " without BEGIN"));
    }
    if (name != open_.back().name) {
      return LineError(
          a_.parsed, i,
          StrCat("END:", name, " does not match BEGIN:", open_.back().name, " on line ",
                 StartLineNumber(a_.parsed, open_.back().line)));
    }
    const OpenComponent closed = std::move(open_.back());
    open_.pop_back();
    if (component_field_ != kNone && open_.size() == component_depth_) {
      FinishComponentField(i);
    } else if (closed.is_part) {
      a_.parts[closed.part].end_line = i;
    }
    return absl::OkStatus();
  }

  void FinishComponentField(size_t i) {
    FieldInfo& field = a_.fields[component_field_];
    assert(field.component && field.first_line < i);
    field.last_line = i;
    size_t bytes = 0;
    for (size_t k = field.first_line; k <= i; ++k) bytes += lines_[k].raw.size();
    field.value.reserve(bytes);
    for (size_t k = field.first_line; k <= i; ++k) {
      if (k != field.first_line) field.value.push_back('\n');
      AppendCanonical(field.value, lines_[k]);
    }
    component_field_ = kNone;
  }

  absl::Status Property(size_t i) {
    ContentLine& line = lines_[i];
    if (open_.empty()) {
      return LineError(a_.parsed, i,
                       StrCat(a_.parts.empty() ? "text before BEGIN:" : "text after END:",
                              TopLevelName(kind_)));
    }
    if (component_field_ != kNone) {
      FieldInfo& field = a_.fields[component_field_];
      if (field.key_name == "VTIMEZONE" && open_.size() == component_depth_ + 1 &&
          field.tzid.empty() && EqualsIgnoreCase(line.name, "TZID")) {
        field.tzid = std::string(Trim(UnescapeText(line.value)));
      }
      return absl::OkStatus();
    }
    PartInfo& part = a_.parts[open_.back().part];
    FieldInfo& field = a_.fields.emplace_back();
    field.part = open_.back().part;
    field.first_line = field.last_line = i;
    field.value.reserve(line.raw.size());
    AppendCanonical(field.value, line);  // upper-cases line.name
    field.key_name = line.name;
    if (part.uid.empty() && field.key_name == "UID") {
      part.uid = std::string(Trim(UnescapeText(line.value)));
    } else if (part.recurrence_id.empty() && field.key_name == "RECURRENCE-ID") {
      part.recurrence_id = line.value;
    }
    return absl::OkStatus();
  }

  const RecordKind kind_;
  Analysis& a_;
  std::vector<ContentLine>& lines_;
  std::vector<OpenComponent> open_;
  size_t component_field_ = kNone;  // the whole-component field being read
  size_t component_depth_ = 0;      // open_.size() outside its BEGIN
};

// Record::uid, part paths and field names.
void NameFields(RecordKind kind, Analysis& a) {
  std::string& uid = a.record.uid;
  bool several = false;
  for (const PartInfo& part : a.parts) {
    if (part.uid.empty()) continue;
    if (uid.empty()) uid = part.uid;
    several = several || part.uid != uid;
  }
  if (several) uid.clear();

  std::unordered_map<std::string, size_t> siblings;  // path without "#n" -> count
  FieldMap& fields = a.record.fields;
  for (PartInfo& part : a.parts) {
    std::string base;
    if (part.parent != kNone) base = StrCat(a.parts[part.parent].path, "/");
    AppendEscaped(base, part.name, kNameSpecials);
    if (!part.uid.empty() && part.uid != uid) {
      base.push_back(':');
      AppendEscaped(base, part.uid, kQualifierSpecials);
    }
    if (!part.recurrence_id.empty()) {
      base.push_back('@');
      AppendEscaped(base, part.recurrence_id, kQualifierSpecials);
    }
    const size_t n = ++siblings[base];
    part.path = n == 1 ? std::move(base) : StrCat(base, "#", n);
    const bool inserted = fields.try_emplace(part.path).second;
    assert(inserted);
    (void)inserted;
  }

  std::string name;
  for (FieldInfo& field : a.fields) {
    const std::string& path = a.parts[field.part].path;
    name.assign(path).push_back('/');
    name.append(field.key_name);
    if (!field.component && IsSingleValued(kind, field.key_name)) {
      auto [it, inserted] = fields.try_emplace(name, std::move(field.value));
      if (inserted) {
        field.entry = it;
        continue;
      }
    }
    name.push_back('/');
    if (field.component && field.key_name == "VTIMEZONE" && !field.tzid.empty()) {
      AppendEscaped(name, field.tzid, kQualifierSpecials);
    } else {
      AppendHash(name, field.value);
    }
    const size_t base_size = name.size();
    for (size_t n = 2;; ++n) {
      auto [it, inserted] = fields.try_emplace(name, std::move(field.value));
      if (inserted) {
        field.entry = it;
        break;
      }
      name.resize(base_size);
      name.append(StrCat("~", n));
    }
  }
}

absl::StatusOr<Analysis> Analyze(RecordKind kind, std::string_view text) {
  Analysis a;
  FERRY_ASSIGN_OR_RETURN(a.parsed, ParseContentLines(text));
  FERRY_RETURN_IF_ERROR(Structurer(kind, a).Run());
  NameFields(kind, a);
  assert(a.record.fields.size() == a.parts.size() + a.fields.size());
  return a;
}

// ---------------------------------------------------------------------------------
// Writing: field maps as parts, and canonical text back to lines.

struct TargetPart {
  std::string_view path;
  std::string name;  // the component name
  size_t parent = kNone;
  std::vector<FieldMap::const_iterator> properties;  // in field-name order
  std::vector<FieldMap::const_iterator> components;
  std::vector<size_t> children;
};

struct Target {
  std::vector<TargetPart> parts;
  std::unordered_map<std::string_view, size_t> by_path;
  std::vector<size_t> roots;
};

absl::Status FieldError(std::string_view field_name, std::string_view reason) {
  return absl::InvalidArgumentError(StrCat("field \"", field_name, "\": ", reason));
}

// "#n" of the last segment of a part path; 1 when there is none.
std::pair<std::string_view, size_t> SplitSiblingNumber(std::string_view path) {
  const size_t hash = path.rfind('#');
  if (hash == std::string_view::npos || path.find('/', hash) != std::string_view::npos ||
      hash + 1 == path.size()) {
    return {path, 1};
  }
  size_t n = 0;
  for (char c : path.substr(hash + 1)) {
    if (c < '0' || c > '9' || n > (kNone - 9) / 10) return {path, 1};
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return {path.substr(0, hash), n};
}

// Orders sibling parts so that "X#2" comes before "X#10".
void SortParts(const Target& target, std::vector<size_t>& parts) {
  std::sort(parts.begin(), parts.end(), [&](size_t a, size_t b) {
    return SplitSiblingNumber(target.parts[a].path) <
           SplitSiblingNumber(target.parts[b].path);
  });
}

absl::Status AddTargetPart(RecordKind kind, Target& target, std::string_view path) {
  const size_t slash = path.rfind('/');
  const std::string_view segment =
      slash == std::string_view::npos ? path : path.substr(slash + 1);
  TargetPart part;
  part.path = path;
  part.name = Unescape(segment.substr(0, segment.find_first_of(":@#")));
  if (part.name.empty()) return FieldError(path, "a part path without component name");
  if (slash == std::string_view::npos) {
    if (part.name != TopLevelName(kind)) {
      return FieldError(path,
                        StrCat("a top-level part that is not ", TopLevelName(kind)));
    }
  } else {
    auto parent = target.by_path.find(path.substr(0, slash));
    if (parent == target.by_path.end())
      return FieldError(path, "no marker for its parent");
    if (kind != RecordKind::kCalendar || target.parts[parent->second].parent != kNone ||
        part.name == "VTIMEZONE") {
      return FieldError(path, "a component that is not a part there");
    }
    part.parent = parent->second;
  }
  const size_t index = target.parts.size();
  target.by_path.emplace(path, index);
  if (part.parent == kNone) {
    target.roots.push_back(index);
  } else {
    target.parts[part.parent].children.push_back(index);
  }
  target.parts.push_back(std::move(part));
  return absl::OkStatus();
}

// The part a non-marker field belongs to, from its name and the property or component
// name its value starts with.
// `key_name` is set to that upper-case name.
absl::StatusOr<size_t> PartOfField(const Target& target, std::string_view field_name,
                                   std::string_view value, bool& component,
                                   std::string& key_name) {
  const std::string_view first_line = value.substr(0, value.find('\n'));
  key_name = LineName(first_line);
  UpperInPlace(key_name);
  component = key_name == "BEGIN";
  if (component) {
    const size_t colon = ValueColon(first_line);
    if (colon == std::string_view::npos) return FieldError(field_name, "bad BEGIN line");
    key_name = UpperTrimmed(first_line.substr(colon + 1));
  }
  // "<path>/<NAME>", or "<path>/<NAME>/<hash or TZID>".
  std::string_view prefix = field_name;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (prefix.size() > key_name.size() && prefix.ends_with(key_name) &&
        prefix[prefix.size() - key_name.size() - 1] == '/') {
      auto it =
          target.by_path.find(prefix.substr(0, prefix.size() - key_name.size() - 1));
      if (it != target.by_path.end()) return it->second;
    }
    const size_t slash = prefix.rfind('/');
    if (slash == std::string_view::npos) break;
    prefix = prefix.substr(0, slash);
  }
  return FieldError(field_name, StrCat("no part marker for this ", key_name, " field"));
}

absl::StatusOr<Target> BuildTarget(RecordKind kind, const FieldMap& fields) {
  Target target;
  target.by_path.reserve(8);
  // A parent's path sorts before its children's.
  for (const auto& [name, value] : fields) {
    if (value.empty()) FERRY_RETURN_IF_ERROR(AddTargetPart(kind, target, name));
  }
  if (target.roots.empty()) {
    return absl::InvalidArgumentError(StrCat("no ", TopLevelName(kind), " part"));
  }
  std::string key_name;
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    if (it->second.empty()) continue;
    bool component = false;
    FERRY_ASSIGN_OR_RETURN(
        size_t index, PartOfField(target, it->first, it->second, component, key_name));
    TargetPart& part = target.parts[index];
    if (!component) {
      part.properties.push_back(it);
    } else if (kind == RecordKind::kCalendar && part.parent == kNone &&
               key_name != "VTIMEZONE") {
      return FieldError(it->first, "a component that would be a part there");
    } else {
      part.components.push_back(it);
    }
  }
  SortParts(target, target.roots);
  for (TargetPart& part : target.parts) SortParts(target, part.children);
  return target;
}

// Checks that `value` is canonical text of a property (or, with `component`, of a whole
// component) and appends its lines, folded, to `out`.
absl::Status AppendFieldLines(std::string& out, std::string_view field_name,
                              std::string_view value, bool component,
                              std::string_view line_ending) {
  absl::StatusOr<ParsedText> parsed = ParseContentLines(value);
  if (!parsed.ok()) {
    const absl::string_view message = parsed.status().message();
    return FieldError(field_name, std::string_view(message.data(), message.size()));
  }
  std::vector<ContentLine>& lines = parsed->lines;
  if (lines.empty() || parsed->had_bom)
    return FieldError(field_name, "not canonical text");
  if (!component && (lines.size() != 1 || IsBegin(lines[0]) || IsEnd(lines[0]))) {
    return FieldError(field_name, "not the canonical text of one property");
  }
  std::vector<std::string> open;
  std::string canonical;
  canonical.reserve(value.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    ContentLine& line = lines[i];
    if (component && IsBegin(line)) {
      open.push_back(UpperTrimmed(line.value));
    } else if (component && IsEnd(line)) {
      if (open.empty() || open.back() != UpperTrimmed(line.value)) {
        return FieldError(field_name, "END does not match BEGIN");
      }
      open.pop_back();
    }
    if (component && open.empty() != (i + 1 == lines.size())) {
      return FieldError(field_name, "not the canonical text of one component");
    }
    if (IsQuotedPrintable(line) && line.value.ends_with('=')) {
      return FieldError(field_name, "a quoted-printable value ends with '='");
    }
    if (i != 0) canonical.push_back('\n');
    AppendCanonical(canonical, line);
  }
  if (canonical != value) return FieldError(field_name, "not canonical text");
  for (const ContentLine& line : lines)
    out.append(SerializeContentLine(line, line_ending));
  return absl::OkStatus();
}

void AppendSimpleLine(std::string& out, std::string_view name, std::string_view value,
                      std::string_view line_ending) {
  ContentLine line;
  line.name = std::string(name);
  line.value = std::string(value);
  out.append(SerializeContentLine(line, line_ending));
}

// Properties of a part in the order written: VERSION first, then field-name order.
std::vector<FieldMap::const_iterator> PropertiesInOrder(const TargetPart& part) {
  std::vector<FieldMap::const_iterator> order = part.properties;
  auto version = std::find_if(order.begin(), order.end(), [&](auto it) {
    const std::string_view name = it->first;
    return name.size() == part.path.size() + 8 && name.starts_with(part.path) &&
           name.ends_with("/VERSION");
  });
  if (version != order.end()) std::rotate(order.begin(), version, version + 1);
  return order;
}

// Writes a whole part: BEGIN, properties, whole components, child parts, END.
absl::Status AppendPart(std::string& out, const Target& target, size_t index,
                        std::string_view line_ending) {
  const TargetPart& part = target.parts[index];
  AppendSimpleLine(out, "BEGIN", part.name, line_ending);
  for (auto it : PropertiesInOrder(part)) {
    FERRY_RETURN_IF_ERROR(
        AppendFieldLines(out, it->first, it->second, false, line_ending));
  }
  for (auto it : part.components) {
    FERRY_RETURN_IF_ERROR(
        AppendFieldLines(out, it->first, it->second, true, line_ending));
  }
  for (size_t child : part.children) {
    assert(target.parts[child].parent == index);
    FERRY_RETURN_IF_ERROR(AppendPart(out, target, child, line_ending));
  }
  AppendSimpleLine(out, "END", part.name, line_ending);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------
// Rewriting.

class Rewriter {
 public:
  Rewriter(const Analysis& original, const Target& target, const FieldMap& fields)
      : a_(original),
        target_(target),
        fields_(fields),
        lines_(original.parsed.lines),
        ending_(original.parsed.line_ending),
        insert_before_(lines_.size() + 1) {}

  absl::StatusOr<std::string> Run() {
    FERRY_RETURN_IF_ERROR(PlanInsertions());
    std::vector<size_t> part_at(lines_.size(), kNone);
    std::vector<size_t> field_at(lines_.size(), kNone);
    for (size_t p = 0; p < a_.parts.size(); ++p) part_at[a_.parts[p].begin_line] = p;
    for (size_t f = 0; f < a_.fields.size(); ++f) field_at[a_.fields[f].first_line] = f;

    std::string out;
    out.reserve(a_.parsed.had_bom * kBom.size() + RawBytes() + 256);
    if (a_.parsed.had_bom) out.append(kBom);
    size_t i = 0;
    while (i < lines_.size()) {
      out.append(insert_before_[i]);
      if (part_at[i] != kNone && !target_.by_path.contains(a_.parts[part_at[i]].path)) {
        i = a_.parts[part_at[i]].end_line + 1;  // the part is removed
        continue;
      }
      if (field_at[i] == kNone) {
        out.append(lines_[i++].raw);
        continue;
      }
      const FieldInfo& field = a_.fields[field_at[i]];
      auto now = fields_.find(field.entry->first);
      if (now != fields_.end() && now->second == field.entry->second) {
        for (size_t k = field.first_line; k <= field.last_line; ++k) {
          out.append(lines_[k].raw);
        }
      } else if (now != fields_.end()) {
        FERRY_RETURN_IF_ERROR(
            AppendFieldLines(out, now->first, now->second, field.component, ending_));
      }
      i = field.last_line + 1;
    }
    std::string& at_end = insert_before_[lines_.size()];
    if (!at_end.empty() && !out.empty() && out.back() != '\n' && out.back() != '\r') {
      out.append(ending_);
    }
    out.append(at_end);
    return out;
  }

 private:
  size_t RawBytes() const {
    size_t bytes = 0;
    for (const ContentLine& line : lines_) bytes += line.raw.size();
    return bytes;
  }

  bool IsOriginalField(const std::string& name) const {
    auto it = a_.record.fields.find(name);
    return it != a_.record.fields.end() && !it->second.empty();
  }

  std::unordered_map<std::string_view, size_t> OriginalParts() const {
    std::unordered_map<std::string_view, size_t> by_path;
    for (size_t p = 0; p < a_.parts.size(); ++p) by_path.emplace(a_.parts[p].path, p);
    return by_path;
  }

  // Added fields go before the first nested component of their part (properties) or
  // before its END (whole components, parts); added top-level parts at the end.
  absl::Status PlanInsertions() {
    const std::unordered_map<std::string_view, size_t> original_parts = OriginalParts();
    for (size_t t = 0; t < target_.parts.size(); ++t) {
      const TargetPart& part = target_.parts[t];
      auto original = original_parts.find(part.path);
      if (original == original_parts.end()) {
        if (part.parent == kNone) {
          FERRY_RETURN_IF_ERROR(
              AppendPart(insert_before_[lines_.size()], target_, t, ending_));
        }
        continue;
      }
      const PartInfo& info = a_.parts[original->second];
      const size_t property_line =
          info.first_child_line != kNone ? info.first_child_line : info.end_line;
      for (auto it : PropertiesInOrder(part)) {
        if (IsOriginalField(it->first)) continue;
        FERRY_RETURN_IF_ERROR(AppendFieldLines(insert_before_[property_line], it->first,
                                               it->second, false, ending_));
      }
      for (auto it : part.components) {
        if (IsOriginalField(it->first)) continue;
        FERRY_RETURN_IF_ERROR(AppendFieldLines(insert_before_[info.end_line], it->first,
                                               it->second, true, ending_));
      }
      for (size_t child : part.children) {
        if (original_parts.contains(target_.parts[child].path)) continue;
        FERRY_RETURN_IF_ERROR(
            AppendPart(insert_before_[info.end_line], target_, child, ending_));
      }
    }
    return absl::OkStatus();
  }

  const Analysis& a_;
  const Target& target_;
  const FieldMap& fields_;
  const std::vector<ContentLine>& lines_;
  const std::string& ending_;
  std::vector<std::string> insert_before_;  // by line index; the last is the end
};

// Whether `text` is a decimal number; if so, `digits` are its digits without leading
// zeros, for comparing numbers of any length.
bool AsNumber(std::string_view text, std::string_view& digits) {
  text = Trim(text);
  if (text.starts_with('+')) text.remove_prefix(1);
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const size_t first = text.find_first_not_of('0');
  digits = first == std::string_view::npos ? std::string_view() : text.substr(first);
  return true;
}

// <0, 0, >0 as a is less than, equal to or greater than b.
int CompareBookkeeping(bool numeric, std::string_view a, std::string_view b) {
  std::string_view digits_a;
  std::string_view digits_b;
  if (numeric) {
    const bool number_a = AsNumber(a, digits_a);
    const bool number_b = AsNumber(b, digits_b);
    if (number_a != number_b) return number_a ? 1 : -1;
    if (number_a) {
      if (digits_a.size() != digits_b.size())
        return digits_a.size() < digits_b.size() ? -1 : 1;
      return digits_a.compare(digits_b);
    }
  }
  return a.compare(b);
}

}  // namespace

absl::StatusOr<Record> ParseRecord(RecordKind kind, std::string_view text) {
  FERRY_ASSIGN_OR_RETURN(Analysis analysis, Analyze(kind, text));
  return std::move(analysis.record);
}

absl::StatusOr<std::string> SerializeRecord(RecordKind kind, const FieldMap& fields) {
  FERRY_ASSIGN_OR_RETURN(const Target target, BuildTarget(kind, fields));
  std::string out;
  size_t bytes = 0;
  for (const auto& [name, value] : fields) bytes += value.size() + 8;
  out.reserve(bytes + bytes / 32);
  for (size_t root : target.roots) {
    FERRY_RETURN_IF_ERROR(AppendPart(out, target, root, "\r\n"));
  }
  assert(!out.empty());
  return out;
}

absl::StatusOr<std::string> RewriteRecord(RecordKind kind, std::string_view original,
                                          const FieldMap& fields) {
  FERRY_ASSIGN_OR_RETURN(const Analysis analysis, Analyze(kind, original));
  FERRY_ASSIGN_OR_RETURN(const Target target, BuildTarget(kind, fields));
  return Rewriter(analysis, target, fields).Run();
}

bool IsBookkeepingField(std::string_view field_name) {
  const size_t slash = field_name.rfind('/');
  if (slash == std::string_view::npos) return false;
  // "<path>/VTIMEZONE/<TZID>" names a time zone, whatever its TZID.
  if (field_name.substr(0, slash).ends_with("/VTIMEZONE")) return false;
  const std::string_view key = field_name.substr(slash + 1);
  return std::find(kBookkeepingNames.begin(), kBookkeepingNames.end(), key) !=
         kBookkeepingNames.end();
}

std::string MergeBookkeeping(std::string_view field_name, std::string_view a,
                             std::string_view b) {
  const bool numeric = field_name.ends_with("/SEQUENCE");
  int order = CompareBookkeeping(numeric, FieldValueText(a), FieldValueText(b));
  if (order == 0) order = a.compare(b);  // the same either way round
  return std::string(order >= 0 ? a : b);
}

std::string_view FieldValueText(std::string_view canonical) {
  if (canonical.find('\n') != std::string_view::npos) return {};
  const size_t colon = ValueColon(canonical);
  return colon == std::string_view::npos ? std::string_view()
                                         : canonical.substr(colon + 1);
}

std::string WithFieldValueText(std::string_view canonical, std::string_view value) {
  if (canonical.find('\n') != std::string_view::npos) return std::string(canonical);
  const size_t colon = ValueColon(canonical);
  if (colon == std::string_view::npos) return std::string(canonical);
  return StrCat(canonical.substr(0, colon + 1), value);
}

}  // namespace ferry::pim
