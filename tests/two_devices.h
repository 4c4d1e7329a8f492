// A test fixture with real processes (tests/process.h): a ferryd, and devices "a" and
// "b" of one account, each syncing the files collection "Docs" with a folder of its
// own, root_a_ and root_b_ (a's is made; b's is made by its first sync).
#ifndef FERRY_TESTS_TWO_DEVICES_H_
#define FERRY_TESTS_TWO_DEVICES_H_

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/process.h"

namespace ferry::testing {

class TwoDevicesTest : public ::testing::Test {
 protected:
  // Deadline of each ferry command.
  static constexpr int kCommandMs = 120000;

  void SetUp() override {
    std::ofstream(dir_ / "passphrase") << "two devices\n";
    server_ = std::make_unique<FerrydProcess>(dir_ / "server");
    ASSERT_TRUE(server_->ok()) << server_->error();
    for (const char* device : {"a", "b"}) {
      CommandResult r = RunFerryLogin(Home(device), server_->address(), "user",
                                      dir_ / "passphrase", device[0] == 'a', kCommandMs);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    std::filesystem::create_directories(root_a_);
    ASSERT_EQ(Ferry("a", {"add", "Docs", "--path", root_a_}).exit_code, 0);
    ASSERT_EQ(Ferry("b", {"add", "Docs", "--path", root_b_}).exit_code, 0);
  }

  std::string Home(const std::string& device) const { return dir_ / ("home-" + device); }
  // `ferry --home HOME(device) ARGS...`.
  CommandResult Ferry(const std::string& device, const std::vector<std::string>& args) {
    return RunFerry(Home(device), args, kCommandMs);
  }

  TempDir dir_;
  std::unique_ptr<FerrydProcess> server_;
  std::filesystem::path root_a_ = dir_ / "root-a";
  std::filesystem::path root_b_ = dir_ / "root-b";
};

}  // namespace ferry::testing

#endif  // FERRY_TESTS_TWO_DEVICES_H_
