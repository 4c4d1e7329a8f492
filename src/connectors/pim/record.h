// vCard and iCalendar files as records of fields: the universal form the contacts and
// calendar connectors sync, and the way back to file text that keeps everything
// nobody edited byte for byte.
//
// A file is one record. Its components form parts, and each property of a part is a
// field:
//
//   field name  = <part path> "/" <property key>
//   part path   = segments joined by "/": the components from the top of the file down
//                 to the one holding the property, e.g. "VCARD", "VCALENDAR",
//                 "VCALENDAR/VEVENT", "VCALENDAR/VEVENT@20250101T090000Z"
//   segment     = NAME (upper case) followed by qualifiers that tell siblings apart:
//                 - ":" UID            when the component has a UID other than the
//                                      record's UID (see Record::uid);
//                 - "@" RECURRENCE-ID  the value of its RECURRENCE-ID as written
//                                      (without parameters such as TZID), if any;
//                 - "#" n              n >= 2 for the n-th sibling with the same
//                                      segment so far; the first has no "#".
//                 '%', '/' and '#' inside a UID, RECURRENCE-ID or TZID are written %25,
//                 %2F and %23 (in NAME also ':' and '@', as %3A and %40), and when such
//                 a text is not valid UTF-8, so is every byte above 0x7F.
//   property key = NAME (upper case, group not included) for the first occurrence of
//                 a property that is single-valued (see below), otherwise NAME "/" 16
//                 hex digits (lower case) of a 64-bit FNV-1a hash of the field value
//                 ("~2", "~3", ... appended when two values of one part are identical),
//                 so that TEL, EMAIL, ADR, CATEGORIES, ATTENDEE, EXDATE, X-... merge
//                 like sets.
//
//   Every part also has a marker field named exactly its part path, with an empty
//   value, so that a component without properties survives.
//
// Only VCARD (top level) and the components directly inside VCALENDAR other than
// VTIMEZONE are parts. Deeper components (VALARM, AVAILABLE, ...) and VTIMEZONE are
// whole-component fields of the part that holds them: key NAME "/" hash for VALARM
// and the like; "VTIMEZONE/" TZID (its first TZID, unescaped and trimmed like a UID,
// then escaped as above; a hash when it has none) for a time zone.
//
// A field value is canonical text: a property is its content line unfolded, without
// line ending, with the property name and the parameter names in upper case and group,
// parameters and value otherwise as parsed (value NOT unescaped; a quoted-printable
// value keeps its encoding): what AppendUnfoldedContentLine writes. A whole component
// is its lines so made, "BEGIN:..." through "END:...", joined by "\n". A property's
// value is never empty (it holds at least "NAME:"), so "" marks a part.
//
// Single-valued properties, keyed by name: vCard VERSION UID FN N BDAY ANNIVERSARY
// GENDER KIND REV PRODID NOTE ORG TITLE ROLE NICKNAME PHOTO LOGO SOUND TZ GEO
// SORT-STRING CLASS; iCalendar VERSION PRODID CALSCALE METHOD UID DTSTAMP DTSTART DTEND
// DUE DURATION SUMMARY DESCRIPTION LOCATION STATUS CLASS PRIORITY SEQUENCE TRANSP URL
// GEO ORGANIZER CREATED LAST-MODIFIED RRULE RECURRENCE-ID COMPLETED PERCENT-COMPLETE
// COLOR NAME. A second occurrence of one of them is keyed by content like any other.
//
// Changes from the first draft of this header: "#n" counts from 2 like "~n" (the
// second sibling is "#2"); '#' is escaped in qualifiers and ':' '@' in names, so that
// part paths are unique and a new part's component name can be read back from its
// path; the RECURRENCE-ID qualifier is the value only; parameter names are upper-cased
// in canonical text; only parts count as UID-bearing components for Record::uid; an
// added property goes before the first nested component of its part rather than right
// before END (RFC 5545 wants properties before VALARM); details of FieldValueText,
// WithFieldValueText and MergeBookkeeping below.
#ifndef FERRY_CONNECTORS_PIM_RECORD_H_
#define FERRY_CONNECTORS_PIM_RECORD_H_

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::pim {

enum class RecordKind { kContact, kCalendar };

// Field name -> canonical value. Ordered, so that equal records compare equal.
using FieldMap = std::map<std::string, std::string>;

struct Record {
  // The file's UID: the value (unescaped, trimmed) of the UID property when every
  // UID-bearing part of the file has this one UID; "" when the file has none or
  // several different ones. A part's UID is its first UID property; whole-component
  // fields (VALARM, AVAILABLE, ... which may have UIDs of their own) do not count.
  std::string uid;
  FieldMap fields;
};

// Parses a whole .vcf (kContact) or .ics (kCalendar) file.
// INVALID_ARGUMENT with a reason for people, "line N: ..." where N is a physical line
// ("line 12: END:VEVENT without BEGIN", "line 3: END:VTODO does not match BEGIN:VEVENT
// on line 2", "line 1: missing END:VCALENDAR for this BEGIN", "line 9: text after
// END:VCARD", "line 1: text before BEGIN:VCARD", "line 1: top-level component VEVENT in
// a calendar file (want VCALENDAR)", content-line errors, ...; "no BEGIN:VCARD" for a
// file without components); RESOURCE_EXHAUSTED for oversized input (content_line.h).
// Every top-level component must be of the file's kind (VCARD; VCALENDAR), and there
// must be at least one: a bare VEVENT is not a calendar file. BEGIN and END values are
// compared case-insensitively, surrounding whitespace ignored.
absl::StatusOr<Record> ParseRecord(RecordKind kind, std::string_view text);

// The text of a new file holding exactly `fields`: parts in field-name order (parents
// before children), in each part VERSION first (vCard 3 and 4 want it right after
// BEGIN), then the other properties in field-name order, then the whole-component
// fields, then the child parts. CRLF line endings, folded at 75 octets.
// ParseRecord(SerializeRecord(f)).fields == f for every f that ParseRecord returned.
// INVALID_ARGUMENT when the fields do not form a record (no top-level part, a field
// whose part has no marker, a part where ParseRecord would not make one, a value that
// is not canonical text). Keys are not checked against values: a content-keyed field
// may hold a changed value (it parses back under its new hash).
absl::StatusOr<std::string> SerializeRecord(RecordKind kind, const FieldMap& fields);

// `original` (a file ParseRecord accepts) changed to hold exactly `fields`:
// - the lines of every field whose value is unchanged, and of every BEGIN/END of a part
//   that stays, are kept byte for byte (folding, line endings, BOM, blank lines);
// - a changed field is re-serialized in place, with the file's line ending;
// - a removed field's lines are dropped; a removed part is dropped with all its lines;
// - an added property goes right before the first nested component of its part (the
//   BEGIN of a VALARM, VTIMEZONE or child part), or before its END when it has none;
//   an added whole component right before the END of its part; an added part right
//   before the END of its parent part (or at the end of the file for a top-level part),
//   laid out as SerializeRecord does.
// So RewriteRecord(t, ParseRecord(t).fields) == t, and the result parses to `fields`
// up to what ParseRecord derives from order and content: a content-keyed field whose
// value changed gets its new hash, a removed first sibling renumbers the "#n" ones
// after it, and a removed first occurrence of a single-valued property makes the next
// one the keyed-by-NAME one. Errors as SerializeRecord's, and ParseRecord's for
// `original`.
absl::StatusOr<std::string> RewriteRecord(RecordKind kind, std::string_view original,
                                          const FieldMap& fields);

// Fields whose value tools change on every save (REV, DTSTAMP, LAST-MODIFIED, SEQUENCE,
// PRODID): when two devices changed one differently, the merge takes the greater value
// (SEQUENCE compared as a number, timestamps as text) instead of logging a conflict.
// Only the keyed-by-NAME field ("<part>/SEQUENCE") is one; a second SEQUENCE line,
// keyed by content, is not.
bool IsBookkeepingField(std::string_view field_name);
// The value the merge keeps for a bookkeeping field changed to `a` here and `b` there:
// the one with the greater FieldValueText (for SEQUENCE as a decimal number of any
// length; a non-number is less than any number), ties broken by the whole text, so
// MergeBookkeeping(f, a, b) == MergeBookkeeping(f, b, a).
std::string MergeBookkeeping(std::string_view field_name, std::string_view a,
                             std::string_view b);

// The value part of a property field's canonical text (after the first ':' that is not
// inside a quoted parameter value), for showing a conflict to people; "" for a whole
// component field.
std::string_view FieldValueText(std::string_view canonical);
// `canonical` with its value part replaced by `value` (for `ferry resolve --take`);
// `value` must be escaped as the property wants (EscapeText for TEXT) and hold no line
// break, or SerializeRecord and RewriteRecord refuse the field. `canonical` unchanged
// for a whole component field or text without a value part.
std::string WithFieldValueText(std::string_view canonical, std::string_view value);

}  // namespace ferry::pim

#endif  // FERRY_CONNECTORS_PIM_RECORD_H_
