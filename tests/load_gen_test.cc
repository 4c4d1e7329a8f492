// bench/load_gen against a real ferryd: the numbers docs/performance.md reports come
// from a generator that issues what it is asked to, counts every reply, and checks that
// each acknowledged append is in the log.
#include <regex>
#include <string>

#include "gtest/gtest.h"
#include "tests/process.h"

namespace ferry {
namespace {

using testing::CommandResult;
using testing::FerrydProcess;
using testing::RunCommand;
using testing::TempDir;

// The number after `label` in load_gen's report; -1 when it is not there.
long long Reported(const std::string& out, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex(label + " ([0-9]+)"))) return -1;
  return std::stoll(m[1]);
}

TEST(LoadGenTest, EveryDueAppendIsIssuedAnsweredAndInTheLog) {
  TempDir dir;
  FerrydProcess server(dir / "server");
  ASSERT_TRUE(server.ok()) << server.error();
  // 8 devices at 160 appends/s for 1 s: each device's append is due every 50 ms, from
  // an offset under 50 ms, so 20 each; a pull after every 5th.
  CommandResult run = RunCommand(
      {LOAD_GEN_PATH, "--server", server.address(), "--fingerprint", server.fingerprint(),
       "--devices", "8", "--rate", "160", "--seconds", "1", "--label", "smoke"},
      "", 120000);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(Reported(run.out, "appends"), 160) << run.out;
  EXPECT_EQ(Reported(run.out, "pulls"), 32) << run.out;
  EXPECT_EQ(Reported(run.out, "errors"), 0) << run.out;
  EXPECT_EQ(Reported(run.out, "lost"), 0) << run.out;
  EXPECT_EQ(Reported(run.out, "conflicts"), 0) << run.out;
}

TEST(LoadGenTest, AServerWithAnotherCertificateIsRefused) {
  TempDir dir;
  FerrydProcess server(dir / "server");
  ASSERT_TRUE(server.ok()) << server.error();
  CommandResult run =
      RunCommand({LOAD_GEN_PATH, "--server", server.address(), "--fingerprint",
                  "SHA256:" + std::string(64, '0'), "--devices", "2", "--seconds", "0.2"},
                 "", 120000);
  EXPECT_NE(run.exit_code, 0) << run.out;
  EXPECT_NE(run.err.find("setup"), std::string::npos) << run.err;
  EXPECT_EQ(Reported(run.out, "appends"), -1) << run.out;
}

}  // namespace
}  // namespace ferry
