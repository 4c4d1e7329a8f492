#include "src/connectors/files/path_rules.h"

#include <clocale>
#include <cstdint>
#include <cwctype>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::files {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::string_literals;

std::string Repeat(std::string_view piece, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out.append(piece);
  return out;
}

// A valid path of exactly `bytes` bytes (at least 100): 99-byte components.
std::string PathOfSize(size_t bytes) {
  std::string path;
  while (bytes - path.size() > 100) path += Repeat("x", 99) + "/";
  return path + Repeat("y", bytes - path.size());
}

std::string Utf8(uint32_t c) {
  std::string out;
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return out;
}

struct PathCase {
  const char* what;
  std::string path;
};

std::ostream& operator<<(std::ostream& os, const PathCase& c) {
  return os << c.what << " \"" << EscapePath(c.path) << "\"";
}

std::vector<PathCase> HostilePaths() {
  return {
      {"empty", ""},
      {"root", "/"},
      {"absolute", "/abs"},
      {"absolute etc", "/etc/passwd"},
      {"double leading slash", "//a"},
      {"double slash", "a//b"},
      {"trailing slash", "a/"},
      {"trailing slash deep", "a/b/"},
      {"many trailing slashes", "a///"},
      {"only slashes", "///"},
      {"dotdot", ".."},
      {"dotdot slash", "../"},
      {"dotdot first", "../a"},
      {"dotdot last", "a/.."},
      {"dotdot middle", "a/../b"},
      {"dotdot deep last", "a/b/.."},
      {"dotdot twice", "../../etc/passwd"},
      {"dotdots after name", "a/../../.."},
      {"dotdot after space", " /.."},
      {"dotdot absolute", "/../a"},
      {"dot", "."},
      {"dot first", "./a"},
      {"dot last", "a/."},
      {"dot middle", "a/./b"},
      {"dot slash", "./"},
      {"NUL alone", "\0"s},
      {"NUL middle", "a\0b"s},
      {"NUL component", "a/\0"s},
      {"NUL hides dotdot", "..\0.txt"s},
      {"backslash", "a\\b"},
      {"backslash alone", "\\"},
      {"windows dotdot", "..\\..\\windows"},
      {"backslash in second", "a/b\\c"},
      {"dotdot backslash", "a/..\\b"},
      {"newline", "a\n"},
      {"carriage return", "a\rb"},
      {"tab", "\t"},
      {"escape sequence", "\x1b[31mred"},
      {"unit separator", "a\x1f"},
      {"DEL", "\x7f"},
      {"DEL middle",
       "a\x7f"
       "b"},
      {"control in middle component", "a/\x01/b"},
      {"C1 CSI",
       "\xc2\x9b"
       "2J"},
      {"C1 first", "\xc2\x80"},
      {"C1 NEL", "a\xc2\x85"},
      {"C1 last", "\xc2\x9f"},
      {"byte ff", "\xff"},
      {"byte fe", "a\xfe"},
      {"lone continuation", "\x80"},
      {"continuation after ascii", "a\xbf"},
      {"truncated 2-byte", "a\xc3"},
      {"truncated 2-byte before slash", "\xc3/a"},
      {"truncated 3-byte", "\xe2\x82"},
      {"truncated 4-byte", "\xf0\x9f\x98"},
      {"bad continuation", "\xc3\x28"},
      {"bad 3-byte continuation", "a/\xe2\x28\xa1"},
      {"overlong slash c0", "\xc0\xaf"},
      {"overlong c1", "\xc1\xbf"},
      {"overlong slash 3-byte", "\xe0\x80\xaf"},
      {"overlong 3-byte max", "\xe0\x9f\xbf"},
      {"overlong slash 4-byte", "\xf0\x80\x80\xaf"},
      {"overlong 4-byte max", "\xf0\x8f\xbf\xbf"},
      {"overlong dotdot", "\xc0\xae\xc0\xae"},
      {"overlong dotdot component", "a/\xc0\xae\xc0\xae/b"},
      {"surrogate high", "\xed\xa0\x80"},
      {"surrogate low", "\xed\xbf\xbf"},
      {"above U+10FFFF", "\xf4\x90\x80\x80"},
      {"byte f5", "\xf5\x80\x80\x80"},
      {"5-byte form", "\xf8\x88\x80\x80\x80"},
      {"component 256 bytes", Repeat("c", 256)},
      {"second component 256 bytes", "a/" + Repeat("c", 256)},
      {"component 256 bytes of UTF-8", Repeat("\xc3\xa9", 128)},
      {"path 4097 bytes", PathOfSize(4097)},
      {"path 1 MiB", Repeat("a/", 1 << 19) + "a"},
      {"257 components", Repeat("a/", 256) + "a"},
  };
}

class HostilePathTest : public ::testing::TestWithParam<PathCase> {};

TEST_P(HostilePathTest, Refused) {
  absl::Status status = ValidateRelativePath(GetParam().path);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  // The message never carries a raw control character or invalid byte.
  for (char c : std::string(status.message())) {
    const auto byte = static_cast<unsigned char>(c);
    EXPECT_TRUE(byte >= 0x20 && byte < 0x7f) << status;
  }
  EXPECT_LT(status.message().size(), 1200u);  // at most 256 bytes shown, escaped
}

INSTANTIATE_TEST_SUITE_P(All, HostilePathTest, ::testing::ValuesIn(HostilePaths()));

std::vector<PathCase> ValidPaths() {
  return {
      {"single", "a"},
      {"nested", "a/b/c.txt"},
      {"spaces", "my documents/a file.txt"},
      {"leading and trailing space", " a /b "},
      {"dots inside", "a..b"},
      {"hidden", ".hidden"},
      {"hidden dir", "a/.git/config"},
      {"two dots prefix", "..hidden"},
      {"three dots", "..."},
      {"dotdot with space", ".. "},
      {"trailing dot", "name."},
      {"percent-encoded dotdot", "%2e%2e/%2f"},
      {"punctuation", "a-b_c~!@#$%^&()[]{};',=+`"},
      {"colon", "a:b"},
      {"windows reserved name", "CON/aux.txt"},
      {"latin",
       "\xc3\x9cn\xc3\xaf"
       "c\xc3\xb6"
       "d\xc3\xa9.txt"},
      {"japanese", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xe6\x96\x87.txt"},
      {"emoji", "\xf0\x9f\x98\x80 smile"},
      {"no-break space", "\xc2\xa0"},
      {"BOM",
       "\xef\xbb\xbf"
       "a"},
      {"last before surrogates", "\xed\x9f\xbf"},
      {"private use", "\xee\x80\x80"},
      {"U+10FFFF", "\xf4\x8f\xbf\xbf"},
      {"component 255 bytes", Repeat("c", 255)},
      {"path 4096 bytes", PathOfSize(4096)},
      {"256 components", Repeat("a/", 255) + "a"},
      {"temp-like name", ".ferry-tmp-0123"},
  };
}

class ValidPathTest : public ::testing::TestWithParam<PathCase> {};

TEST_P(ValidPathTest, Accepted) {
  EXPECT_TRUE(ValidateRelativePath(GetParam().path).ok())
      << ValidateRelativePath(GetParam().path);
}

INSTANTIATE_TEST_SUITE_P(All, ValidPathTest, ::testing::ValuesIn(ValidPaths()));

TEST(ValidateRelativePathTest, MessagesNameTheProblem) {
  EXPECT_THAT(ValidateRelativePath("").message(), HasSubstr("empty"));
  EXPECT_THAT(ValidateRelativePath("a//b").message(), HasSubstr("empty component"));
  EXPECT_THAT(ValidateRelativePath("a/../b").message(), HasSubstr("\"..\""));
  EXPECT_THAT(ValidateRelativePath("a/./b").message(), HasSubstr("\".\""));
  EXPECT_THAT(ValidateRelativePath("a\0b"s).message(), HasSubstr("NUL at byte 1"));
  EXPECT_THAT(ValidateRelativePath("ab\\c").message(), HasSubstr("'\\' at byte 2"));
  EXPECT_THAT(ValidateRelativePath("a\x1b").message(), HasSubstr("control character"));
  EXPECT_THAT(ValidateRelativePath("ab\xff").message(), HasSubstr("UTF-8 at byte 2"));
  EXPECT_THAT(ValidateRelativePath(Repeat("c", 256)).message(), HasSubstr("255"));
  EXPECT_THAT(ValidateRelativePath(PathOfSize(4097)).message(), HasSubstr("4096"));
  EXPECT_THAT(ValidateRelativePath(Repeat("a/", 256) + "a").message(),
              HasSubstr("256 components"));
}

TEST(ValidateRelativePathTest, MessageEscapesThePath) {
  std::string message(ValidateRelativePath("bad\n\x1b[2J\\\"").message());
  EXPECT_THAT(message, HasSubstr("bad\\x0a\\x1b[2J\\x5c\\x22"));
  EXPECT_THAT(message, Not(HasSubstr("\n")));
}

TEST(EscapePathTest, KeepsPrintableAsciiAndCutsLongText) {
  EXPECT_EQ(EscapePath("a b/c.txt"), "a b/c.txt");
  EXPECT_EQ(EscapePath("\xc3\xa4\x7f"), "\\xc3\\xa4\\x7f");
  EXPECT_EQ(EscapePath("\0"s), "\\x00");
  EXPECT_EQ(EscapePath(Repeat("a", 300)), Repeat("a", 256) + "...");
}

TEST(CaseFoldKeyTest, AsciiCollides) {
  EXPECT_EQ(CaseFoldKey("README"), CaseFoldKey("readme"));
  EXPECT_EQ(CaseFoldKey("Docs/ReadMe.MD"), "docs/readme.md");
  EXPECT_EQ(CaseFoldKey("a-1_!.txt /~"), "a-1_!.txt /~");
  EXPECT_NE(CaseFoldKey("readme"), CaseFoldKey("read me"));
}

TEST(CaseFoldKeyTest, LatinCollides) {
  EXPECT_EQ(CaseFoldKey("\xc3\x84"), CaseFoldKey("\xc3\xa4"));  // Ä ä
  EXPECT_EQ(CaseFoldKey("\xc3\x80\xc3\x89\xc3\x8e\xc3\x95\xc3\x9c\xc3\x9e"),
            "\xc3\xa0\xc3\xa9\xc3\xae\xc3\xb5\xc3\xbc\xc3\xbe");  // ÀÉÎÕÜÞ
  EXPECT_EQ(CaseFoldKey("\xc3\x97"), "\xc3\x97");                 // × is not ÷
  EXPECT_EQ(CaseFoldKey("\xc3\x9f"), "\xc3\x9f");                 // ß unchanged
  EXPECT_EQ(CaseFoldKey("\xc4\x80\xc4\xb2\xc4\xb9\xc5\x8a\xc5\xbd"),
            "\xc4\x81\xc4\xb3\xc4\xba\xc5\x8b\xc5\xbe");  // Ā Ĳ Ĺ Ŋ Ž
  EXPECT_EQ(CaseFoldKey("\xc5\xb8"), "\xc5\xb8");         // Ÿ: not a fixed offset
  EXPECT_EQ(CaseFoldKey("\xc4\xb0"), "\xc4\xb0");         // İ: not folded
}

TEST(CaseFoldKeyTest, GreekAndCyrillicCollide) {
  EXPECT_EQ(CaseFoldKey("\xce\xa9\xce\x91"), "\xcf\x89\xce\xb1");  // ΩΑ -> ωα
  EXPECT_EQ(CaseFoldKey("\xce\x86\xce\x88\xce\x8a\xce\x8c\xce\x8e\xce\x8f"),
            "\xce\xac\xce\xad\xce\xaf\xcf\x8c\xcf\x8d\xcf\x8e");  // ΆΈΊΌΎΏ
  EXPECT_EQ(CaseFoldKey("\xce\xa3"), CaseFoldKey("\xcf\x82"));    // Σ ς
  EXPECT_EQ(CaseFoldKey("\xcf\x83"), CaseFoldKey("\xcf\x82"));    // σ ς
  EXPECT_EQ(CaseFoldKey("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"),
            CaseFoldKey("\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"));  // Привет
  EXPECT_EQ(CaseFoldKey("\xd0\x81"), "\xd1\x91");                              // Ё ё
  EXPECT_EQ(CaseFoldKey("\xd1\xa0\xd3\x80\xd3\x81\xd4\x80"),
            "\xd1\xa1\xd3\x8f\xd3\x82\xd4\x81");  // Ѡ Ӏ Ӂ Ԁ
}

TEST(CaseFoldKeyTest, OtherBytesUnchanged) {
  EXPECT_EQ(CaseFoldKey("\xe6\x97\xa5\xf0\x9f\x98\x80"), "\xe6\x97\xa5\xf0\x9f\x98\x80");
  EXPECT_EQ(CaseFoldKey("A\xff\xc3"
                        "B\xc3"),
            "a\xff\xc3"
            "b\xc3");
  EXPECT_EQ(CaseFoldKey(""), "");
}

// Every code point below U+0800 keeps its UTF-8 length, folds to a fixed point and
// stays valid.
TEST(CaseFoldKeyTest, IdempotentAndLengthPreserving) {
  for (uint32_t c = 0; c < 0x800; ++c) {
    std::string text = Utf8(c);
    std::string key = CaseFoldKey(text);
    ASSERT_EQ(key.size(), text.size()) << c;
    EXPECT_EQ(CaseFoldKey(key), key) << c;
    EXPECT_EQ(ValidateRelativePath(key).ok(), ValidateRelativePath(text).ok()) << c;
  }
}

// Every code point that is folded folds as the C library's towlower does (checked when
// a UTF-8 locale is available), except final sigma, which only case folding joins.
TEST(CaseFoldKeyTest, AgreesWithTowlower) {
  if (std::setlocale(LC_CTYPE, "C.UTF-8") == nullptr) GTEST_SKIP() << "no C.UTF-8";
  int folded = 0;
  for (uint32_t c = 0x41; c < 0x800; ++c) {
    std::string key = CaseFoldKey(Utf8(c));
    if (key == Utf8(c) || c == 0x3C2) continue;
    ++folded;
    EXPECT_EQ(key, Utf8(static_cast<uint32_t>(std::towlower(static_cast<wint_t>(c)))))
        << std::hex << c;
  }
  EXPECT_GT(folded, 250);
  std::setlocale(LC_CTYPE, "C");
}

TEST(CheckNoCaseCollisionsTest, FindsWholePathCollisions) {
  absl::Status status = CheckNoCaseCollisions({"a.txt", "README", "b", "readme"});
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("\"README\" and \"readme\""));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      CheckNoCaseCollisions({"docs/\xc3\x84pfel", "docs/\xc3\xa4pfel"})));
}

TEST(CheckNoCaseCollisionsTest, FindsParentDirectoryCollisions) {
  absl::Status status = CheckNoCaseCollisions({"Photos/x.jpg", "photos/y.jpg"});
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("(\"Photos\" vs \"photos\")"));
  EXPECT_TRUE(absl::IsFailedPrecondition(CheckNoCaseCollisions({"a/B/c", "a/b"})));
}

TEST(CheckNoCaseCollisionsTest, ReportsTheFirstPair) {
  absl::Status status = CheckNoCaseCollisions({"X", "y", "Y", "x"});
  EXPECT_THAT(status.message(), HasSubstr("\"y\" and \"Y\""));
}

TEST(CheckNoCaseCollisionsTest, AcceptsDistinctPaths) {
  EXPECT_TRUE(CheckNoCaseCollisions({}).ok());
  EXPECT_TRUE(CheckNoCaseCollisions({"a", "a"}).ok());
  EXPECT_TRUE(CheckNoCaseCollisions({"a", "b", "a/b", "a/c/d"}).ok());
  EXPECT_TRUE(CheckNoCaseCollisions({"x/A", "y/a"}).ok());
  EXPECT_TRUE(CheckNoCaseCollisions({"\xc3\x9f", "ss"}).ok());
}

TEST(CheckNoCaseCollisionsTest, LinearOnDeepPaths) {
  std::vector<std::string> paths;
  for (int i = 0; i < 2000; ++i) paths.push_back(Repeat("d/", 255) + std::to_string(i));
  EXPECT_TRUE(CheckNoCaseCollisions(paths).ok());
  paths.push_back(Repeat("d/", 254) + "D/0");
  EXPECT_TRUE(absl::IsFailedPrecondition(CheckNoCaseCollisions(paths)));
}

}  // namespace
}  // namespace ferry::files
