// The data interface of the sync engine for one kind of data. A connector reads the
// application's data (a folder, a folder of vCards) into items of the universal
// format and writes items back. The engine owns everything else: the shadow, merging,
// sealing and the network.
//
// A connector is used by one engine at a time, from one thread, except where a method
// says otherwise (ReadContent).
#ifndef FERRY_CONNECTOR_H_
#define FERRY_CONNECTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/ferry/v1/change.pb.h"

namespace ferry {

// Items are shared and never changed once made: maps of a whole collection copy
// pointers, not items.
using ItemPtr = std::shared_ptr<const v1::Item>;

// What a scan found locally for one item: its universal form and the connector's
// stamp of the local object (files: size, mtime, inode, mode), stored in the shadow
// so the next scan can skip unchanged objects without reading them.
struct LocalItem {
  ItemPtr item;
  std::string stamp;
};

struct ScanResult {
  std::map<std::string, LocalItem> items;  // by id
  // Objects that could not become items, with the reason (invalid names, unreadable
  // files, malformed records). They are reported, never deleted or overwritten.
  std::vector<std::pair<std::string, std::string>> skipped;
  uint64_t bytes_read = 0;  // content read and hashed (unchanged objects cost nothing)
};

// Supplies chunk plaintext to a connector that writes content. The engine resolves
// each chunk from local data when it can (any item holding it) and downloads the
// rest. Thread-compatible.
class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // The plaintext of each ref, in order. At most kChunkIdsPerRequestMax refs per call.
  virtual absl::StatusOr<std::vector<std::string>> Fetch(
      const std::vector<v1::ChunkRef>& refs) = 0;
};

// A run of chunks of one content: chunks [begin, end), the first at byte `offset`.
struct ContentPart {
  int begin = 0;
  int end = 0;
  uint64_t offset = 0;
};

class Connector {
 public:
  virtual ~Connector() = default;

  // A stable name ("files/1"), saved in the device state and checked on every sync,
  // so a collection is never read by the wrong connector.
  virtual std::string_view Name() const = 0;

  // False when the application's data is not there at all (an unmounted disk, a
  // deleted folder): the engine then never reads the absence as deletions.
  virtual bool DataPresent() = 0;

  // Whether `earlier` and `now`, two stamps of this connector's, describe the same
  // local object left as it was, even where Scan would not trust `earlier` (a stamp
  // taken while the object was being written). The engine asks this of an object a
  // write was refused over: while it is unchanged, it is not a local edit.
  virtual bool SameStamp(const std::string& earlier, const std::string& now) const {
    return earlier == now;
  }

  // A hint that Scan follows soon: a connector may start reading the local data now,
  // on a thread of its own, while the engine loads the shadow. Scan then uses what was
  // read (taken after this call, so no older than a scan started here). The default
  // does nothing.
  virtual void Prefetch() {}

  // Lists the current local items. `synced` and `stamps` are the shadow's items and
  // stamps: an object whose stamp equals its stamp in `stamps` is taken from `synced`
  // without reading it.
  virtual absl::StatusOr<ScanResult> Scan(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) = 0;

  // Scan's result for local data taken to be as it was at the last sync: `synced`
  // with `stamps`, nothing read, but with whatever Apply needs of a scan set up. For a
  // sync started because another device pushed (SyncOptions::assume_unchanged); a
  // local change made since the last scan is not lost: Apply refuses to replace an
  // object whose stamp is not the expected one, and the next real Scan finds it. The
  // default runs Scan.
  virtual absl::StatusOr<ScanResult> ScanUnchanged(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) {
    return Scan(synced, stamps);
  }

  // Calls `sink` with chunks [part.begin, part.end) of content field `field` of local
  // item `item`, in order, reading the local data again from `part.offset` (the sizes of
  // the chunks before `begin` added up); when `end` is the number of chunks, the data
  // must end there too. Every chunk given to `sink` has been checked to hash
  // to its ChunkRef's id (the engine seals it under that id without hashing it again);
  // FAILED_PRECONDITION when the data no longer matches the item (it changed since the
  // scan, or `offset` is not the part's), INVALID_ARGUMENT for a range outside the
  // chunk list. Called from several
  // threads at once, also for one item (the engine seals and uploads parts of a large
  // content on every core), after Scan.
  virtual absl::Status ReadContent(
      const v1::Item& item, const std::string& field, const ContentPart& part,
      const std::function<absl::Status(const v1::ChunkRef&, std::string_view)>& sink) = 0;

  // Reads `size` bytes at `offset` of content field `field` of the local object `id`
  // (a chunk the engine expects there). Any error means "not available locally".
  virtual absl::StatusOr<std::string> ReadRange(const std::string& id,
                                                const std::string& field, uint64_t offset,
                                                uint32_t size) = 0;

  // Makes the local object `id` be `after` (nullptr: delete it). `expected_stamp` is
  // the stamp the engine last saw for it ("" = expected absent); when the local object
  // no longer matches it, nothing is changed and the result is ABORTED (the engine
  // treats that as a conflict, never as an overwrite). Returns the new stamp ("" after
  // a delete).
  virtual absl::StatusOr<std::string> Apply(const std::string& id,
                                            const std::string& expected_stamp,
                                            const v1::Item* after,
                                            ChunkSource* chunks) = 0;

  // One Apply of a batch.
  struct ApplyRequest {
    std::string id;
    std::string expected_stamp;
    const v1::Item* after = nullptr;
  };
  // Applies the requests in order, with the result of Apply for each. A connector may
  // make the batch durable at once (files: two flushes for the batch instead of two
  // per file); this default applies them one by one.
  virtual std::vector<absl::StatusOr<std::string>> ApplyBatch(
      const std::vector<ApplyRequest>& requests, ChunkSource* chunks) {
    std::vector<absl::StatusOr<std::string>> results;
    for (const ApplyRequest& r : requests) {
      results.push_back(Apply(r.id, r.expected_stamp, r.after, chunks));
    }
    return results;
  }

  // Renames the local object `from` (expected to match `from_stamp`) to `to` (expected
  // absent). ABORTED as for Apply. Returns the new stamp of `to`.
  virtual absl::StatusOr<std::string> Move(const std::string& from,
                                           const std::string& from_stamp,
                                           const std::string& to) = 0;

  // A free id beside `id` for a conflict copy of it made by `device` at `time_ms`.
  virtual std::string ConflictCopyId(const std::string& id, const std::string& device,
                                     int64_t time_ms) = 0;

  // Local edit time of an item, for "the later edit wins" (files: mtime), in ms.
  virtual int64_t EditTimeMs(const v1::Item& item) = 0;

  // Whether items that both sides changed merge field by field (records: contacts,
  // events), rather than as whole items with a conflict copy (files).
  virtual bool MergesFields() const { return false; }

  // When field `name` was changed here to `ours` and elsewhere to `theirs` (different
  // values): a value that stands for both with nothing lost, such as the later of two
  // revision stamps, or nullopt for a conflict (the later edit wins and the other
  // value is logged). Only called when MergesFields().
  virtual std::optional<v1::Field> MergeFieldValues(std::string_view name,
                                                    const v1::Field& ours,
                                                    const v1::Field& theirs) {
    (void)name;
    (void)ours;
    (void)theirs;
    return std::nullopt;
  }
};

}  // namespace ferry

#endif  // FERRY_CONNECTOR_H_
