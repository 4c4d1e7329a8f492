// Fuzzes the vCard / iCalendar reader on file text from the user's disk or another
// device. The first byte picks contact or calendar. Whatever parses must come back
// unchanged: rewritten with its own fields it is byte for byte the input, and a new
// file made from its fields parses to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "src/connectors/pim/content_line.h"
#include "src/connectors/pim/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using ferry::pim::RecordKind;
  RecordKind kind = (data[0] & 1) != 0 ? RecordKind::kCalendar : RecordKind::kContact;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  (void)ferry::pim::ParseContentLines(text);
  auto record = ferry::pim::ParseRecord(kind, text);
  if (!record.ok()) return 0;
  auto rewritten = ferry::pim::RewriteRecord(kind, text, record->fields);
  if (!rewritten.ok() || *rewritten != text) std::abort();
  auto serialized = ferry::pim::SerializeRecord(kind, record->fields);
  if (!serialized.ok()) std::abort();
  auto again = ferry::pim::ParseRecord(kind, *serialized);
  if (!again.ok() || again->fields != record->fields || again->uid != record->uid) {
    std::abort();
  }
  for (const auto& [name, value] : record->fields) {
    (void)ferry::pim::FieldValueText(value);
    (void)ferry::pim::IsBookkeepingField(name);
  }
  return 0;
}
