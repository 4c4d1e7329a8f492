// vCard parsing and rewriting: what a scan pays per changed contact.
#include <benchmark/benchmark.h>

#include <string>

#include "src/connectors/pim/record.h"

namespace {

const std::string& TypicalVcard() {
  static const std::string* text = new std::string(
      "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
      "N:Lovelace;Ada;Augusta;Countess;\r\nFN:Ada Lovelace\r\n"
      "ORG:Analytical Engine Society;Research\r\nTITLE:Mathematician\r\n"
      "EMAIL;type=INTERNET;type=HOME;type=pref:ada@example.org\r\n"
      "EMAIL;type=INTERNET;type=WORK:ada.lovelace@engine.example.com\r\n"
      "TEL;type=CELL;type=VOICE;type=pref:+44 20 7946 0958\r\n"
      "TEL;type=HOME;type=VOICE:+44 20 7946 0000\r\n"
      "TEL;type=WORK;type=VOICE:+44 20 7946 0001\r\n"
      "item1.ADR;type=HOME;type=pref:;;12 St James's Square;London;;SW1Y 4JH;United "
      "Ki\r\n"
      " ngdom\r\nitem1.X-ABADR:gb\r\n"
      "item2.URL;type=pref:https\\://en.wikipedia.org/wiki/Ada_Lovelace\r\n"
      "item2.X-ABLabel:_$!<HomePage>!$_\r\n"
      "BDAY;value=date:1815-12-10\r\n"
      "NOTE:First to publish an algorithm intended for the Analytical Engine.\\nWrot\r\n"
      " e the notes in 1843.\r\n"
      "CATEGORIES:Mathematics,History,Computing\r\n"
      "X-SOCIALPROFILE;type=twitter:https://twitter.com/ada\r\n"
      "REV:2025-01-01T12:00:00Z\r\nUID:5C1B2F8E-1D3A-4B5C-9E7F-0123456789AB\r\n"
      "END:VCARD\r\n");
  return *text;
}

void BM_ParseRecord(benchmark::State& state) {
  const std::string& text = TypicalVcard();
  for (auto _ : state) {
    auto record = ferry::pim::ParseRecord(ferry::pim::RecordKind::kContact, text);
    benchmark::DoNotOptimize(record);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseRecord);

void BM_RewriteOneField(benchmark::State& state) {
  const std::string& text = TypicalVcard();
  auto record = ferry::pim::ParseRecord(ferry::pim::RecordKind::kContact, text);
  ferry::pim::FieldMap fields = record->fields;
  fields["VCARD/NOTE"] = "NOTE:Edited.";
  for (auto _ : state) {
    auto rewritten =
        ferry::pim::RewriteRecord(ferry::pim::RecordKind::kContact, text, fields);
    benchmark::DoNotOptimize(rewritten);
  }
}
BENCHMARK(BM_RewriteOneField);

}  // namespace
