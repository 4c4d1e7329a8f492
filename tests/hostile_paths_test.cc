// Hostile paths through the whole apply path. A real ferryd; device A appends
// transactions sealed with the collection's real key (as a malicious or broken peer
// would) and device B syncs them with the real engine and files connector into a
// folder that sits in a sandbox beside sentinel files and directories.
//
// Every case is one or more transactions. After each, and again after a second sync,
// the test checks: the sync completed; each hostile item was refused and reported and
// the legitimate item sent with it applied; the sandbox outside the folder is exactly
// as it was (names, types, sizes, modes, mtimes, inodes, contents, link targets), and
// so is every place outside the sandbox that a path names; the folder holds exactly
// what is legitimate; and B pushes nothing (a refused item is not a local deletion).
//
// The policy checked is the one src/connectors/files/path_rules.h documents: on Linux
// a name is refused only when it could escape or is malformed ("..", ".", empty
// components, absolute, NUL, '\\', control characters, invalid UTF-8, too long or too
// deep). Names that are merely odd are kept byte for byte: NFC and NFD twins and names
// that differ only in case are two items (the file system is byte-exact and
// case-sensitive), zero-width and bidi characters are kept, Windows reserved names
// (CON, AUX, COM1...) and names ending in a dot or space are ordinary names here.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "src/client/collections.h"
#include "src/client/device.h"
#include "src/connectors/files/files_connector.h"
#include "src/connectors/files/path_rules.h"
#include "src/connectors/files/root_dir.h"
#include "src/core/strings.h"
#include "src/engine/items.h"
#include "src/seal/seal.h"
#include "tests/process.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using client::Device;
using client::LocalCollection;
using files::EscapePath;
using testing::FerrydProcess;
using testing::TempDir;
using namespace std::string_literals;

constexpr char kSeedText[] = "seed contents\n";

// One entry as lstat and its contents describe it; equal descriptions mean unchanged.
std::string DescribeEntry(const fs::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return "absent";
  std::string what = StrCat("mode=", st.st_mode, " ino=", st.st_ino,
                            " mtime=", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec);
  if (S_ISREG(st.st_mode)) {
    std::string data = testing::ReadWholeFile(path);
    what += StrCat(" size=", st.st_size, " data=", std::hash<std::string>()(data));
  } else if (S_ISLNK(st.st_mode)) {
    what += " target=" + fs::read_symlink(path).string();
  }
  return what;
}

// Every entry under `dir` (and `dir` itself as "."), not following symbolic links,
// leaving out the subtree `skip` entirely.
std::map<std::string, std::string> Snapshot(const fs::path& dir, const fs::path& skip) {
  std::map<std::string, std::string> out;
  out["."] = DescribeEntry(dir);
  for (auto it = fs::recursive_directory_iterator(dir);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->path() == skip) {
      it.disable_recursion_pending();
      continue;
    }
    out[fs::relative(it->path(), dir).string()] = DescribeEntry(it->path());
  }
  return out;
}

// The folder's entries by relative path: 'f' file, 'd' directory, 'l' link, '?' other.
// Walked with openat, so that paths longer than PATH_MAX from / can be listed.
void ListDir(int dir_fd, const std::string& prefix, int depth,
             std::map<std::string, char>* out) {
  ASSERT_LT(depth, 1000);
  DIR* dir = ::fdopendir(dir_fd);
  ASSERT_NE(dir, nullptr);
  std::vector<std::pair<std::string, char>> children;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    ASSERT_EQ(::fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW), 0) << name;
    char type = S_ISLNK(st.st_mode)   ? 'l'
                : S_ISDIR(st.st_mode) ? 'd'
                : S_ISREG(st.st_mode) ? 'f'
                                      : '?';
    children.emplace_back(name, type);
  }
  for (const auto& [name, type] : children) {
    (*out)[prefix + name] = type;
    if (type != 'd') continue;
    int child = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    ASSERT_GE(child, 0) << name;
    ListDir(child, prefix + name + "/", depth + 1, out);
  }
  ::closedir(dir);
}

std::map<std::string, char> ListRoot(const fs::path& root) {
  std::map<std::string, char> out;
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_GE(fd, 0) << root;
  if (fd >= 0) ListDir(fd, "", 0, &out);
  return out;
}

// What differs between two listings of the folder, escaped and cut short.
std::string Diff(const std::map<std::string, char>& now,
                 const std::map<std::string, char>& want) {
  std::string out;
  for (const auto& [path, type] : now) {
    auto it = want.find(path);
    if (it == want.end() || it->second != type) {
      out += StrCat("\n  unexpected ", type, ":", EscapePath(path));
    }
  }
  for (const auto& [path, type] : want) {
    auto it = now.find(path);
    if (it == now.end() || it->second != type) {
      out += StrCat("\n  missing ", type, ":", EscapePath(path));
    }
  }
  return out;
}

// Why `id` was skipped, or "" when it was not.
std::string Reason(const SyncReport& report, const std::string& id) {
  for (const auto& [what, why] : report.skipped) {
    if (what == id) return why.size() > 300 ? "..." + why.substr(why.size() - 300) : why;
  }
  return "";
}

bool Refused(const SyncReport& report, const std::string& id) {
  for (const auto& [what, why] : report.skipped) {
    if (what == id && why.starts_with("refused")) return true;
  }
  return false;
}

std::string Repeat(std::string_view piece, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out.append(piece);
  return out;
}

// One transaction of a case and what must follow from it.
struct Step {
  std::vector<v1::Op> ops;
  std::vector<std::string> refused;    // reported "refused" by B, at both syncs
  std::map<std::string, char> appear;  // entries of the folder this step adds
  std::vector<std::string> disappear;  // entries of the folder this step removes
  // Items B keeps although the log moved them away (to a name B refuses), and so
  // publishes again at its next sync: kept, never lost.
  std::vector<std::string> kept_and_pushed;
};

struct Case {
  std::string category;
  std::string what;
  std::vector<Step> steps;
};

// Builds the case table. `sandbox` holds the folder "root" and the sentinels; `seed`
// is the content field of a file already stored on the server.
class Cases {
 public:
  Cases(fs::path sandbox, v1::Field seed) : sandbox_(std::move(sandbox)), seed_(seed) {}

  v1::Item File(const std::string& id) const {
    v1::Item item = Base(id, "file", "420");
    engine::SetBytesField(&item, "mtime_ns", "1700000000000000000");
    v1::Field content = seed_;
    engine::SetField(&item, std::move(content));
    return item;
  }
  static v1::Item Dir(const std::string& id) { return Base(id, "dir", "493"); }
  static v1::Item Link(const std::string& id, const std::string& target) {
    v1::Item item = Base(id, "symlink", "0");
    engine::SetBytesField(&item, "target", target);
    return item;
  }

  // An item of `path` that must be refused; its type cycles through file, directory
  // and symbolic link so that every apply path sees hostile names.
  Case Refuse(std::string category, std::string what, const std::string& path) {
    Step step;
    step.ops.push_back(engine::MakePut(Rotating(path)));
    step.refused.push_back(path);
    return {std::move(category), std::move(what), {std::move(step)}};
  }

  // An item of `path` (and items for its parent directories) that must be applied
  // as it is, name for name.
  Case Accept(std::string category, std::string what, const std::string& path,
              char type = 'f') {
    Step step;
    AddAccepted(&step, path, type);
    return {std::move(category), std::move(what), {std::move(step)}};
  }

  void AddAccepted(Step* step, const std::string& path, char type) const {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      step->ops.push_back(engine::MakePut(Dir(path.substr(0, slash))));
      step->appear[path.substr(0, slash)] = 'd';
    }
    step->ops.push_back(engine::MakePut(type == 'd'   ? Dir(path)
                                        : type == 'l' ? Link(path, "target")
                                                      : File(path)));
    step->appear[path] = type;
  }

  std::vector<Case> Names();
  std::vector<Case> Unicode();
  std::vector<Case> Links();

  const fs::path& sandbox() const { return sandbox_; }

 private:
  static v1::Item Base(const std::string& id, const std::string& type,
                       const std::string& mode) {
    v1::Item item;
    item.set_id(id);
    engine::SetBytesField(&item, "type", type);
    engine::SetBytesField(&item, "mode", mode);
    return item;
  }
  v1::Item Rotating(const std::string& path) {
    switch (next_type_++ % 3) {
      case 0:
        return File(path);
      case 1:
        return Dir(path);
      default:
        return Link(path, (sandbox_ / "outside").string());
    }
  }

  fs::path sandbox_;
  v1::Field seed_;
  int next_type_ = 0;
};

std::vector<Case> Cases::Names() {
  const std::string abs_outside = (sandbox_ / "outside").string();
  std::vector<Case> out;
  // ".." and "." in every position.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"dotdot", ".."},
           {"dotdot slash", "../"},
           {"dotdot leading", "../evil"},
           {"dotdot twice", "../../evil"},
           {"dotdot thrice", "../../../evil"},
           {"dotdot to a sentinel", "../secret.txt"},
           {"dotdot into a sentinel dir", "../outside/victim.txt"},
           {"dotdot new in sentinel dir", "../outside/new"},
           {"dotdot into a sibling with the root's prefix", "../rootx/evil"},
           {"dotdot back into the root", "../root/evil"},
           {"dotdot trailing", "a/.."},
           {"dotdot trailing deep", "a/b/.."},
           {"dotdot middle", "a/../b"},
           {"dotdot middle escapes", "a/../../evil"},
           {"a/../..", "a/../.."},
           {"dotdots deep escape", "a/b/../../../outside/evil"},
           {"dotdot repeated", "../../../../../../../../../../../../evil"},
           {"dotdot after existing dir", "seed.d/../../evil"},
           {"dotdot doubled slash", "..//evil"},
           {"dotdot with trailing slash", "a/../"},
           {"dot", "."},
           {"dot slash", "./"},
           {"dot leading", "./evil"},
           {"dot middle", "a/./b"},
           {"dot trailing", "a/."},
           {"dot then dotdot", "./../evil"},
           {"dots alternating", "./.././../evil"},
       }) {
    out.push_back(Refuse("dotdot", what, path));
  }
  // Names made of dots that are not "." or "..": ordinary names.
  out.push_back(Accept("dotdot", "three dots", "..."));
  out.push_back(Accept("dotdot", "dotdot prefix", "..evil", 'd'));
  out.push_back(Accept("dotdot", "dotdot suffix", "evil..", 'l'));
  out.push_back(Accept("dotdot", "dotdot with space", ".. /x"));
  // Absolute paths.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"root", "/"},
           {"absolute", "/evil"},
           {"absolute etc", "/etc/ferry-hostile-x"},
           {"absolute passwd", "/etc/passwd"},
           {"double slash", "//evil"},
           {"triple slash", "///evil"},
           {"absolute into the sandbox", abs_outside + "/abs-new"},
           {"absolute to a sentinel", (sandbox_ / "secret.txt").string()},
           {"absolute with dotdot", "/../evil"},
           {"absolute tmp", "/tmp/ferry-hostile-abs"},
       }) {
    out.push_back(Refuse("absolute", what, path));
  }
  // Windows drive letters: a backslash is refused; "C:x" and "c:/x" are plain names on
  // Linux (':' is allowed, path_rules.h).
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"drive backslash", "C:\\x"},
           {"drive root", "C:\\"},
           {"drive dotdot", "c:\\..\\evil"},
           {"drive system32", "C:\\Windows\\System32\\evil.dll"},
           {"drive mixed", "C:/x\\y"},
       }) {
    out.push_back(Refuse("drive letter", what, path));
  }
  out.push_back(Accept("drive letter", "drive relative", "C:x"));
  out.push_back(Accept("drive letter", "drive slash", "c:/x"));
  out.push_back(Accept("drive letter", "drive only", "D:", 'd'));
  // UNC and device paths.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"unc", "\\\\server\\share\\x"},
           {"unc slashes", "//server/share"},
           {"unc slashes deep", "//server/share/x"},
           {"unc long", "\\\\?\\C:\\x"},
           {"unc device", "\\\\.\\pipe\\x"},
           {"unc mixed", "\\\\server/share"},
       }) {
    out.push_back(Refuse("unc", what, path));
  }
  // NUL anywhere.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"nul alone", "\0"s},
           {"nul leading", "\0evil"s},
           {"nul trailing", "evil\0"s},
           {"nul middle", "ev\0il"s},
           {"nul component", "a/\0/b"s},
           {"nul hides dotdot", "..\0/evil"s},
           {"nul hides extension", "evil.txt\0.jpg"s},
           {"nul after dotdot escape", "a\0/../../evil"s},
       }) {
    out.push_back(Refuse("nul", what, path));
  }
  // Backslash anywhere.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"backslash alone", "\\"},
           {"backslash leading", "\\evil"},
           {"backslash middle", "a\\b"},
           {"backslash trailing", "evil\\"},
           {"backslash dotdot", "..\\evil"},
           {"backslash dotdots", "a\\..\\..\\evil"},
           {"backslash in second component", "a/b\\c"},
       }) {
    out.push_back(Refuse("backslash", what, path));
  }
  // Every C0 control character and DEL, at the start, middle or end, and C1 controls.
  for (int c = 1; c <= 0x20; ++c) {
    char ch = static_cast<char>(c == 0x20 ? 0x7f : c);
    std::string path;
    switch (c % 3) {
      case 0:
        path = StrCat(std::string(1, ch), "ctl");
        break;
      case 1:
        path = StrCat("c", std::string(1, ch), "tl");
        break;
      default:
        path = StrCat("dir/ctl", std::string(1, ch));
        break;
    }
    out.push_back(Refuse("control", StrCat("control 0x", c == 0x20 ? 0x7f : c), path));
  }
  out.push_back(Refuse("control", "C1 NEL", "a\xc2\x85"));
  out.push_back(Refuse("control", "C1 CSI",
                       "\xc2\x9b"
                       "2Jx"));
  // Empty components.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"empty", ""},
           {"doubled slash", "a//b"},
           {"trailing slash", "evil/"},
           {"trailing slash deep", "a/b/"},
           {"leading slash", "/a"},
           {"only slashes", "//"},
           {"tripled slash", "a///b"},
       }) {
    out.push_back(Refuse("empty component", what, path));
  }
  return out;
}

std::vector<Case> Cases::Unicode() {
  std::vector<Case> out;
  // NFC and NFD twins: two items, two files, both kept apart byte for byte.
  {
    Case twins{"nfc/nfd", "e-acute composed and decomposed", {Step{}}};
    AddAccepted(&twins.steps[0], "caf\xc3\xa9.txt", 'f');
    AddAccepted(&twins.steps[0], "cafe\xcc\x81.txt", 'f');
    out.push_back(std::move(twins));
    Case dirs{"nfc/nfd", "twin directories with children", {Step{}}};
    AddAccepted(&dirs.steps[0], "r\xc3\xa9sum\xc3\xa9/a", 'f');
    AddAccepted(&dirs.steps[0], "re\xcc\x81sume\xcc\x81/a", 'f');
    out.push_back(std::move(dirs));
  }
  // Zero-width and bidi characters: legal names, kept as they are.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"ZWSP alone", "\xe2\x80\x8b"},
           {"ZWJ alone", "\xe2\x80\x8d"},
           {"BOM alone", "\xef\xbb\xbf"},
           {"word joiner alone", "\xe2\x81\xa0"},
           {"ZWSP inside", "zw\xe2\x80\x8bsp.txt"},
           {"ZWJ inside", "zw\xe2\x80\x8dj.txt"},
           {"BOM leading",
            "\xef\xbb\xbf"
            "bom.txt"},
           {"word joiner trailing", "wj\xe2\x81\xa0"},
           {"ZWSP after dotdot", "..\xe2\x80\x8b"},
           {"ZWSP before dotdot", "\xe2\x80\x8b../x"},
           {"BOM dot", "\xef\xbb\xbf."},
       }) {
    out.push_back(Accept("zero-width", what, path));
  }
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"RLO extension spoof", "invoice\xe2\x80\xaetxt.exe"},
           {"RLO alone", "\xe2\x80\xae"},
           {"LRO RLO in a directory", "bidi\xe2\x80\xad/\xe2\x80\xae.."},
       }) {
    out.push_back(Accept("bidi", what, path));
  }
  // Case-fold twins: kept apart where case matters (files_connector.h refuses them
  // only on a case-insensitive file system).
  {
    Case readme{"case fold", "README and readme", {Step{}}};
    AddAccepted(&readme.steps[0], "README", 'f');
    AddAccepted(&readme.steps[0], "readme", 'f');
    out.push_back(std::move(readme));
    Case dirs{"case fold", "Docs/a and docs/a", {Step{}}};
    AddAccepted(&dirs.steps[0], "Docs/a", 'f');
    AddAccepted(&dirs.steps[0], "docs/a", 'f');
    out.push_back(std::move(dirs));
    Case latin{"case fold", "A-umlaut twins", {Step{}}};
    AddAccepted(&latin.steps[0], "\xc3\x84pfel", 'f');
    AddAccepted(&latin.steps[0], "\xc3\xa4pfel", 'f');
    out.push_back(std::move(latin));
  }
  // Windows reserved names and trailing dots and spaces: ordinary names on Linux.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"CON", "CON"},
           {"AUX", "AUX"},
           {"NUL", "NUL"},
           {"PRN", "PRN"},
           {"COM1", "COM1"},
           {"LPT1", "LPT1"},
           {"con.txt", "con.txt"},
           {"CON trailing dot", "CON."},
           {"CON trailing space", "CON "},
           {"aux as a directory", "aux/nul.txt"},
           {"COM9 mixed case", "Com9.log"},
           {"CONIN$", "CONIN$"},
       }) {
    out.push_back(Accept("windows reserved", what, path));
  }
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"trailing dot", "name."},
           {"trailing space", "name "},
           {"only a space", " "},
           {"directory with trailing dot", "dir./x"},
           {"trailing dots and spaces", "x. . "},
       }) {
    out.push_back(Accept("trailing dot or space", what, path));
  }
  // Lengths: a component of 255 bytes is fine, of 256 is not; likewise a whole path
  // of kPathBytesMax, and depth kPathDepthMax.
  out.push_back(Accept("long", "component 255 bytes", Repeat("n", 255)));
  out.push_back(
      Accept("long", "component 255 bytes of UTF-8", Repeat("\xc3\xa9", 127) + "x"));
  out.push_back(Refuse("long", "component 256 bytes", Repeat("n", 256)));
  out.push_back(Refuse("long", "component 256 bytes of UTF-8", Repeat("\xc3\xa9", 128)));
  out.push_back(Refuse("long", "second component 256 bytes", "a/" + Repeat("m", 256)));
  {
    std::string path;  // 16 components of 254 bytes and one of 16: 4096 bytes
    for (int i = 0; i < 16; ++i) path += Repeat(std::string(1, 'a' + i), 254) + "/";
    path += Repeat("z", 4096 - path.size());
    out.push_back(Accept("long", "path 4096 bytes", path));
    out.push_back(Refuse("long", "path 4097 bytes", path + "z"));
  }
  std::string deep = Repeat("d/", files::kPathDepthMax - 1) + "leaf";
  out.push_back(Accept("long", "kPathDepthMax components", deep));
  out.push_back(Refuse("long", "kPathDepthMax + 1 components", "d/" + deep));
  out.push_back(Refuse("long", "path 64 KiB", Repeat("x/", 32768)));
  // Invalid UTF-8.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"overlong slash",
            "a\xc0\xaf"
            "b"},
           {"overlong dotdot", "\xc0\xae\xc0\xae/evil"},
           {"overlong 3-byte slash", "\xe0\x80\xaf"},
           {"overlong 4-byte", "\xf0\x80\x80\xaf"},
           {"surrogate high", "\xed\xa0\x80"},
           {"surrogate low", "x\xed\xbf\xbf"},
           {"truncated 2-byte", "trunc\xc3"},
           {"truncated 3-byte", "\xe2\x82/x"},
           {"truncated 4-byte", "\xf0\x9f\x98"},
           {"lone continuation", "\x80"},
           {"byte ff", "evil\xff"},
           {"above U+10FFFF", "\xf4\x90\x80\x80"},
       }) {
    out.push_back(Refuse("invalid utf-8", what, path));
  }
  return out;
}

std::vector<Case> Cases::Links() {
  const std::string outside = (sandbox_ / "outside").string();
  std::vector<Case> out;
  // A link is an item of its own, stored with its target as-is and never followed;
  // items "through" it are refused.
  auto through = [&](std::string what, std::string link, std::string target,
                     std::vector<v1::Item> via) {
    Case c{"symlink", std::move(what), {Step{}, Step{}}};
    c.steps[0].ops.push_back(engine::MakePut(Link(link, target)));
    c.steps[0].appear[link] = 'l';
    for (v1::Item& item : via) {
      c.steps[1].refused.push_back(item.id());
      c.steps[1].ops.push_back(engine::MakePut(std::move(item)));
    }
    return c;
  };
  out.push_back(through("absolute target, then a file through it", "ln-abs", outside,
                        {File("ln-abs/evil"), File("ln-abs/victim.txt")}));
  out.push_back(through("absolute target, then a directory through it", "ln-abs2",
                        outside, {Dir("ln-abs2/evil"), Dir("ln-abs2/sub")}));
  out.push_back(through("dotdot target, then items through it", "ln-up", "../outside",
                        {File("ln-up/evil"), Link("ln-up/evil-link", "/")}));
  out.push_back(through("link to the root's parent", "ln-parent", "..",
                        {File("ln-parent/secret.txt"), Dir("ln-parent/evil"),
                         File("ln-parent/root/evil")}));
  out.push_back(
      through("link to the root itself", "ln-self", ".", {File("ln-self/evil")}));
  out.push_back(through("link to /", "ln-slash", "/", {File("ln-slash/tmp/evil")}));
  {
    Case chain{"symlink", "a chain of links out", {Step{}, Step{}}};
    chain.steps[0].ops = {engine::MakePut(Link("chain1", "chain2")),
                          engine::MakePut(Link("chain2", "chain3")),
                          engine::MakePut(Link("chain3", "../outside"))};
    chain.steps[0].appear = {{"chain1", 'l'}, {"chain2", 'l'}, {"chain3", 'l'}};
    chain.steps[1].ops = {engine::MakePut(File("chain1/evil")),
                          engine::MakePut(Dir("chain2/evil"))};
    chain.steps[1].refused = {"chain1/evil", "chain2/evil"};
    out.push_back(std::move(chain));
  }
  {
    // A link and an item through it in one transaction.
    Case same{"symlink", "link and item through it together", {Step{}}};
    same.steps[0].ops = {engine::MakePut(Link("ln-now", outside)),
                         engine::MakePut(File("ln-now/evil"))};
    same.steps[0].appear = {{"ln-now", 'l'}};
    same.steps[0].refused = {"ln-now/evil"};
    out.push_back(std::move(same));
  }
  {
    // A directory, then a link of the same name: the link replaces the (empty)
    // directory, and what comes after goes nowhere through it.
    Case swap{"symlink", "directory, then a link of the same name", {Step{}, Step{}}};
    swap.steps[0].ops = {engine::MakePut(Dir("dthen"))};
    swap.steps[0].appear = {{"dthen", 'd'}};
    swap.steps[1].ops = {engine::MakePut(Link("dthen", outside)),
                         engine::MakePut(File("dthen/evil"))};
    swap.steps[1].appear = {{"dthen", 'l'}};
    swap.steps[1].refused = {"dthen/evil"};
    out.push_back(std::move(swap));
  }
  {
    // A file whose parent is a file item: refused, the parent stays a file.
    Case parent{"symlink", "a file whose parent is a file", {Step{}, Step{}}};
    parent.steps[0].ops = {engine::MakePut(File("pfile"))};
    parent.steps[0].appear = {{"pfile", 'f'}};
    parent.steps[1].ops = {engine::MakePut(File("pfile/evil"))};
    parent.steps[1].refused = {"pfile/evil"};
    out.push_back(std::move(parent));
  }
  // Hostile moves.
  {
    Case m{"move", "legit item to ../x", {Step{}, Step{}}};
    m.steps[0].ops = {engine::MakePut(File("mv-src"))};
    m.steps[0].appear = {{"mv-src", 'f'}};
    m.steps[1].ops = {engine::MakeMove("mv-src", "../outside/moved")};
    m.steps[1].refused = {"../outside/moved"};
    m.steps[1].kept_and_pushed = {"mv-src"};
    out.push_back(std::move(m));
  }
  {
    Case m{"move", "legit item to an absolute path", {Step{}, Step{}}};
    m.steps[0].ops = {engine::MakePut(Dir("mv-dir"))};
    m.steps[0].appear = {{"mv-dir", 'd'}};
    m.steps[1].ops = {engine::MakeMove("mv-dir", outside + "/moved-dir")};
    m.steps[1].refused = {outside + "/moved-dir"};
    m.steps[1].kept_and_pushed = {"mv-dir"};
    out.push_back(std::move(m));
  }
  {
    Case m{"move", "legit item through a link", {Step{}, Step{}}};
    m.steps[0].ops = {engine::MakePut(File("mv-src2")),
                      engine::MakePut(Link("mv-link", outside))};
    m.steps[0].appear = {{"mv-src2", 'f'}, {"mv-link", 'l'}};
    m.steps[1].ops = {engine::MakeMove("mv-src2", "mv-link/moved")};
    m.steps[1].refused = {"mv-link/moved"};
    m.steps[1].kept_and_pushed = {"mv-src2"};
    out.push_back(std::move(m));
  }
  {
    // The source was refused, so nothing is moved; the item arrives by its content.
    Case m{"move", "../x to a legit name", {Step{}, Step{}}};
    m.steps[0].ops = {engine::MakePut(File("../outside/victim.txt"))};
    m.steps[0].refused = {"../outside/victim.txt"};
    m.steps[1].ops = {engine::MakeMove("../outside/victim.txt", "mv-in")};
    m.steps[1].appear = {{"mv-in", 'f'}};
    out.push_back(std::move(m));
  }
  // Hostile deletes.
  for (const auto& [what, path] : std::vector<std::pair<std::string, std::string>>{
           {"dotdot file", "../secret.txt"},
           {"dotdot directory", "../outside"},
           {"absolute sentinel", (sandbox_ / "outside/victim.txt").string()},
           {"absolute passwd-like", (sandbox_ / "rootx/passwd").string()},
           {"through a link item", "ln-abs/victim.txt"},
           {"through the parent link", "ln-parent/secret.txt"},
       }) {
    Case d{"delete", what, {Step{}}};
    d.steps[0].ops = {engine::MakeDelete(path)};
    out.push_back(std::move(d));
  }
  {
    // An item first put (refused) and then deleted: nothing to do here.
    Case d{"delete", "put then delete of ../x", {Step{}, Step{}}};
    d.steps[0].ops = {engine::MakePut(File("../rootx/passwd"))};
    d.steps[0].refused = {"../rootx/passwd"};
    d.steps[1].ops = {engine::MakeDelete("../rootx/passwd")};
    out.push_back(std::move(d));
  }
  return out;
}

class HostilePathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    server_ = std::make_unique<FerrydProcess>(dir_ / "server");
    ASSERT_TRUE(server_->ok()) << server_->error();
    sandbox_ = fs::path(dir_.path()) / "sandbox";
    root_ = sandbox_ / "root";
    // Sentinels beside the folder.
    fs::create_directories(sandbox_ / "outside/sub");
    fs::create_directories(sandbox_ / "rootx");
    std::ofstream(sandbox_ / "secret.txt") << "secret";
    std::ofstream(sandbox_ / "outside/victim.txt") << "victim";
    std::ofstream(sandbox_ / "outside/sub/deep.txt") << "deep";
    std::ofstream(sandbox_ / "rootx/passwd") << "root:x:0:0";
    fs::create_symlink("outside", sandbox_ / "outside-link");

    a_ = MakeDevice("a", dir_ / "root-a", true);
    ASSERT_NE(a_.device, nullptr);
    std::ofstream(dir_ / "root-a/seed.txt") << kSeedText;
    fs::create_directory(dir_ / "root-a/seed.d");
    ASSERT_TRUE(Sync(a_).ok());
    b_ = MakeDevice("b", root_, false);
    ASSERT_NE(b_.device, nullptr);
    ASSERT_TRUE(Sync(b_).ok());
    ASSERT_EQ(testing::ReadWholeFile(root_ / "seed.txt"), kSeedText);
    model_ = ListRoot(root_);

    auto info = a_.device->FindCollection("Docs");
    ASSERT_TRUE(info.ok()) << info.status();
    info_ = *info;
    auto log = a_.device->ReadLog(info_, 0);
    ASSERT_TRUE(log.ok()) << log.status();
    for (const auto& [seq, tx] : *log) {
      for (const v1::Op& op : tx.ops()) {
        if (op.has_put() && op.put().item().id() == "seed.txt") {
          seed_ = *engine::FindField(op.put().item(), "content");
        }
      }
    }
    ASSERT_TRUE(seed_.has_content());
  }

  struct TestDevice {
    std::unique_ptr<Device> device;
    LocalCollection local;
  };

  TestDevice MakeDevice(const std::string& name, const fs::path& root, bool create) {
    client::LoginOptions options{dir_ / ("home-" + name),
                                 server_->address(),
                                 "alice",
                                 "passphrase",
                                 name,
                                 server_->fingerprint(),
                                 true};
    auto device = create ? Device::CreateAccount(options) : Device::Login(options);
    EXPECT_TRUE(device.ok()) << device.status();
    if (!device.ok()) return {};
    auto local = client::AddCollection(**device, "Docs", "files", root.string());
    EXPECT_TRUE(local.ok()) << local.status();
    if (!local.ok()) return {};
    return {*std::move(device), *local};
  }

  static absl::StatusOr<SyncReport> Sync(TestDevice& d) {
    return client::SyncCollection(*d.device, d.local, SyncOptions());
  }

  // Where a path would land if it were joined to the folder without any check, when
  // that is outside the sandbox: such places are compared before and after too.
  std::vector<fs::path> PlacesOutsideTheSandbox(const Step& step) const {
    std::vector<fs::path> places;
    auto add = [&](const std::string& id) {
      std::string cut = id.substr(0, id.find('\0'));
      if (cut.empty()) return;
      fs::path place = (cut[0] == '/' ? fs::path(cut) : root_ / cut).lexically_normal();
      auto [end, unused] =
          std::mismatch(sandbox_.begin(), sandbox_.end(), place.begin(), place.end());
      if (end != sandbox_.end()) places.push_back(place);
    };
    for (const v1::Op& op : step.ops) {
      add(engine::OpTarget(op));
      if (op.has_move()) add(op.move().from_id());
    }
    return places;
  }

  // One sync of B after the step's transaction, checked.
  void CheckSync(const Step& step, const std::string& legit, int round) {
    SCOPED_TRACE(StrCat("sync ", round));
    absl::StatusOr<SyncReport> report = Sync(b_);
    ASSERT_TRUE(report.ok()) << report.status();
    for (const std::string& id : step.refused) {
      EXPECT_TRUE(Refused(*report, id)) << "not refused: " << EscapePath(id);
    }
    for (const auto& [id, type] : step.appear) {
      EXPECT_FALSE(Refused(*report, id))
          << "refused: " << EscapePath(id) << ": " << Reason(*report, id);
    }
    const size_t pushed = round == 2 ? step.kept_and_pushed.size() : 0;
    EXPECT_EQ(report->pushed_items, pushed) << "B pushed something back";
    if (pushed > 0 && report->pushed_items == pushed) {
      // What B pushed is a put of each item it kept, nothing else.
      auto log = a_.device->ReadLog(info_, report->head_seq - 1);
      ASSERT_TRUE(log.ok()) << log.status();
      ASSERT_EQ(log->size(), 1u);
      std::set<std::string> put;
      for (const v1::Op& op : log->front().second.ops()) {
        EXPECT_TRUE(op.has_put()) << op.ShortDebugString();
        put.insert(engine::OpTarget(op));
      }
      EXPECT_EQ(put, std::set<std::string>(step.kept_and_pushed.begin(),
                                           step.kept_and_pushed.end()));
    }
    EXPECT_EQ(report->conflicts, 0u);
    EXPECT_EQ(testing::ReadWholeFile(root_ / legit), kSeedText)
        << "the legitimate item sent with the hostile one";
    std::map<std::string, char> now = ListRoot(root_);
    EXPECT_TRUE(now == model_) << "the folder differs:" << Diff(now, model_);
  }

  void Run(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      SCOPED_TRACE(StrCat(c.category, ": ", c.what));
      for (size_t s = 0; s < c.steps.size(); ++s) {
        SCOPED_TRACE(StrCat("step ", s));
        const Step& step = c.steps[s];
        std::map<std::string, std::string> outside = Snapshot(sandbox_, root_);
        std::vector<fs::path> places = PlacesOutsideTheSandbox(step);
        std::vector<std::string> places_before;
        for (const fs::path& p : places) places_before.push_back(DescribeEntry(p));

        // Each transaction also carries a legitimate item, which must be applied.
        std::string legit = StrCat("legit-", ++legit_count_);
        std::vector<v1::Op> ops = step.ops;
        ops.push_back(engine::MakePut(Cases({}, seed_).File(legit)));
        ASSERT_TRUE(a_.device->AppendOps(info_, ops).ok());
        for (const auto& [id, type] : step.appear) model_[id] = type;
        for (const std::string& id : step.disappear) model_.erase(id);
        model_[legit] = 'f';

        CheckSync(step, legit, 1);
        CheckSync(step, legit, 2);  // refused again, and not taken for a deletion
        EXPECT_EQ(Snapshot(sandbox_, root_), outside) << "the sandbox changed";
        for (size_t i = 0; i < places.size(); ++i) {
          EXPECT_EQ(DescribeEntry(places[i]), places_before[i]) << places[i];
        }
        if (HasFailure()) return;  // one broken case at a time
      }
      ++cases_run_;
    }
  }

  Cases MakeCases() const { return Cases(sandbox_, seed_); }

  TempDir dir_;
  fs::path sandbox_, root_;
  std::unique_ptr<FerrydProcess> server_;
  TestDevice a_, b_;
  client::CollectionInfo info_;
  v1::Field seed_;
  std::map<std::string, char> model_;
  int legit_count_ = 0;
  int cases_run_ = 0;
};

TEST_F(HostilePathsTest, NamesThatEscapeOrAreMalformed) {
  std::vector<Case> cases = MakeCases().Names();
  Run(cases);
  EXPECT_EQ(cases_run_, static_cast<int>(cases.size()));
}

TEST_F(HostilePathsTest, UnicodeWindowsAndLongNames) {
  std::vector<Case> cases = MakeCases().Unicode();
  Run(cases);
  EXPECT_EQ(cases_run_, static_cast<int>(cases.size()));
}

TEST_F(HostilePathsTest, SymlinksMovesAndDeletes) {
  std::vector<Case> cases = MakeCases().Links();
  Run(cases);
  EXPECT_EQ(cases_run_, static_cast<int>(cases.size()));
}

// A folder with a directory "d" and, beside it, "d-swap": a link to a directory
// outside. Swap() exchanges the two names atomically (renameat2 RENAME_EXCHANGE).
class SwapFixture {
 public:
  SwapFixture()
      : sandbox_(fs::path(dir_.path()) / "sandbox"),
        root_(sandbox_ / "root"),
        outside_(sandbox_ / "outside") {
    seal::Init();
    fs::create_directories(root_ / "d/sub");
    fs::create_directories(outside_);
    std::ofstream(outside_ / "victim.txt") << "victim";
    fs::create_symlink(outside_, root_ / "d-swap");
    before_ = Snapshot(sandbox_, root_);
    files::FilesOptions options;
    options.root = root_.string();
    options.case_insensitive = false;
    connector_ = std::make_unique<files::FilesConnector>(options, &hasher_,
                                                         files::ChunkerSeed(hasher_));
  }

  bool Swap() const {
    return ::renameat2(AT_FDCWD, (root_ / "d").c_str(), AT_FDCWD,
                       (root_ / "d-swap").c_str(), RENAME_EXCHANGE) == 0;
  }
  // True when "d" is the real directory now.
  bool DIsReal() const { return !fs::is_symlink(root_ / "d"); }
  // The real directory, whatever its name is now.
  fs::path RealDir() const { return DIsReal() ? root_ / "d" : root_ / "d-swap"; }
  bool OutsideUnchanged() const { return Snapshot(sandbox_, root_) == before_; }

  v1::Item File(const std::string& id) const { return cases_.File(id); }
  files::FilesConnector& connector() { return *connector_; }

 private:
  static v1::Field Content() {
    v1::Field f;
    f.set_name("content");
    v1::ContentRef* c = f.mutable_content();
    c->add_chunks()->set_size(1000);
    c->mutable_chunks(0)->set_id(std::string(32, 'c'));
    c->set_size(1000);
    return f;
  }

  TempDir dir_;
  fs::path sandbox_, root_, outside_;
  std::map<std::string, std::string> before_;
  seal::CollectionKey key_{seal::SecretKey::Random(), 1};
  seal::ContentHasher hasher_{key_};
  Cases cases_{sandbox_, Content()};
  std::unique_ptr<files::FilesConnector> connector_;
};

// Every chunk is `size` bytes of 'x'. When `swap` is set, each Fetch first calls it:
// Fetch runs inside the connector's write, after the path was walked and before the
// file is renamed into place, which is exactly between check and use.
class Chunks final : public ChunkSource {
 public:
  explicit Chunks(std::function<void()> swap = nullptr) : swap_(std::move(swap)) {}
  absl::StatusOr<std::vector<std::string>> Fetch(
      const std::vector<v1::ChunkRef>& refs) override {
    if (swap_) swap_();
    std::vector<std::string> out;
    for (const v1::ChunkRef& ref : refs) out.emplace_back(ref.size(), 'x');
    return out;
  }

 private:
  std::function<void()> swap_;
};

// The directory is swapped for a link to outside after the walk and before the write
// lands: the write stays in the directory that was opened, which is inside the folder.
TEST(HostileSwapTest, DirectorySwappedForALinkBetweenCheckAndUse) {
  SwapFixture f;
  ASSERT_TRUE(f.connector().Scan({}, {}).ok());
  int swaps = 0;
  Chunks chunks([&] {
    ASSERT_TRUE(f.Swap());
    ++swaps;
  });

  v1::Item one = f.File("d/one");
  absl::StatusOr<std::string> applied = f.connector().Apply(one.id(), "", &one, &chunks);
  EXPECT_EQ(swaps, 1);
  EXPECT_FALSE(f.DIsReal());
  // The result may be OK or a refusal; what matters is where the bytes went.
  EXPECT_TRUE(applied.ok() || absl::IsFailedPrecondition(applied.status()) ||
              absl::IsAborted(applied.status()))
      << applied.status();
  EXPECT_EQ(testing::ReadWholeFile(f.RealDir() / "one"), std::string(1000, 'x'));
  EXPECT_TRUE(f.OutsideUnchanged());

  // A batch: the first file's temporary is written (swapping d away), the second
  // one's walk then meets the link and is refused; the first is committed into the
  // directory it was opened in.
  ASSERT_TRUE(f.Swap());
  ASSERT_TRUE(f.DIsReal());
  v1::Item two = f.File("d/two"), three = f.File("d/sub/three");
  std::vector<absl::StatusOr<std::string>> results =
      f.connector().ApplyBatch({{two.id(), "", &two}, {three.id(), "", &three}}, &chunks);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(swaps, 2);
  EXPECT_TRUE(absl::IsFailedPrecondition(results[1].status())) << results[1].status();
  EXPECT_EQ(testing::ReadWholeFile(f.RealDir() / "two"), std::string(1000, 'x'));
  EXPECT_FALSE(fs::exists(f.RealDir() / "sub/three"));
  EXPECT_TRUE(f.OutsideUnchanged());

  // Swapped while the file is written, and back before the rename.
  ASSERT_TRUE(f.Swap());
  Chunks twice([&] {
    ASSERT_TRUE(f.Swap());
    ASSERT_TRUE(f.Swap());
  });
  v1::Item four = f.File("d/four");
  EXPECT_TRUE(f.connector().Apply(four.id(), "", &four, &twice).ok());
  EXPECT_TRUE(f.DIsReal());
  EXPECT_TRUE(fs::is_regular_file(f.RealDir() / "four"));
  EXPECT_TRUE(f.OutsideUnchanged());
}

// Another thread swaps the directory back and forth, as fast as it can, for a bounded
// number of swaps, while the connector writes files, batches, directories and links
// into it, moves and deletes there. Whatever each call meets, nothing reaches outside.
TEST(HostileSwapTest, DirectorySwappedByAnotherThreadWhileTheConnectorWorks) {
  constexpr int kSwaps = 20'000;
  constexpr int kRoundsMax = 300;
  SwapFixture f;
  ASSERT_TRUE(f.connector().Scan({}, {}).ok());
  Chunks chunks;
  std::atomic<bool> swapping{true};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    for (int i = 0; i < kSwaps && f.Swap(); ++i) swaps.fetch_add(1);
    swapping.store(false);
  });
  int done = 0, refused = 0, rounds = 0;
  auto count = [&](const absl::Status& status) {
    status.ok() ? ++done : ++refused;
    EXPECT_TRUE(status.ok() || absl::IsFailedPrecondition(status) ||
                absl::IsNotFound(status) || absl::IsAborted(status))
        << status;
  };
  for (; rounds < kRoundsMax && swapping.load(); ++rounds) {
    const int i = rounds;
    v1::Item file = f.File(StrCat("d/f", i));
    absl::StatusOr<std::string> written =
        f.connector().Apply(file.id(), "", &file, &chunks);
    count(written.status());
    v1::Item a = f.File(StrCat("d/b", i)), b = f.File(StrCat("d/sub/c", i));
    for (auto& result :
         f.connector().ApplyBatch({{a.id(), "", &a}, {b.id(), "", &b}}, &chunks)) {
      count(result.status());
    }
    v1::Item sub = Cases::Dir(StrCat("d/dir", i));
    count(f.connector().Apply(sub.id(), "", &sub, &chunks).status());
    v1::Item link = Cases::Link(StrCat("d/ln", i), "../../outside");
    count(f.connector().Apply(link.id(), "", &link, &chunks).status());
    if (!written.ok()) continue;
    absl::StatusOr<std::string> moved =
        f.connector().Move(file.id(), *written, StrCat("d/g", i));
    count(moved.status());
    if (moved.ok()) {
      count(f.connector().Apply(StrCat("d/g", i), *moved, nullptr, &chunks).status());
    }
  }
  swapper.join();
  std::printf("%d swaps during %d rounds: %d calls done, %d refused\n", swaps.load(),
              rounds, done, refused);
  EXPECT_GT(rounds, 0);
  EXPECT_TRUE(f.OutsideUnchanged()) << "something changed outside the folder";
}

// The size of the table, by category (printed), and its floor.
TEST(HostilePathCases, AtLeast150) {
  Cases cases("/sandbox", v1::Field());
  std::map<std::string, int> by_category;
  int total = 0;
  for (auto list : {cases.Names(), cases.Unicode(), cases.Links()}) {
    for (const Case& c : list) {
      ++by_category[c.category];
      ++total;
    }
  }
  for (const auto& [category, n] : by_category)
    std::printf("%-24s %3d\n", category.c_str(), n);
  std::printf("%-24s %3d\n", "total", total);
  EXPECT_GE(total, 150);
}

}  // namespace
}  // namespace ferry
