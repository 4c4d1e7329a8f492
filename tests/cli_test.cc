// The ferry and ferryd programs as a person uses them.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "gtest/gtest.h"
#include "tests/process.h"

namespace ferry {
namespace {

using testing::CommandResult;
using testing::FerrydPath;
using testing::FerrydProcess;
using testing::FerryPath;
using testing::RunCommand;
using testing::TempDir;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "passphrase") << "correct horse battery staple\n";
    server_ = std::make_unique<FerrydProcess>(dir_ / "server");
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  CommandResult Ferry(const std::string& home, const std::vector<std::string>& args) {
    return testing::RunFerry(dir_ / home, args);
  }

  CommandResult Login(const std::string& home, const std::string& command,
                      const std::string& device) {
    std::vector<std::string> args;
    if (command == "create")
      args = {"account", "create"};
    else
      args = {"login"};
    std::vector<std::string> rest = {
        "--server",          server_->address(),  "--user",        "alice",
        "--passphrase-file", dir_ / "passphrase", "--device-name", device};
    args.insert(args.end(), rest.begin(), rest.end());
    return Ferry(home, args);
  }

  TempDir dir_;
  std::unique_ptr<FerrydProcess> server_;
};

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST_F(CliTest, AccountDevicesAndRevoke) {
  CommandResult created = Login("laptop", "create", "laptop");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.out.find(server_->fingerprint()), std::string::npos) << created.out;
  CommandResult phone = Login("phone", "login", "phone");
  ASSERT_EQ(phone.exit_code, 0) << phone.err;

  CommandResult devices = Ferry("laptop", {"devices"});
  ASSERT_EQ(devices.exit_code, 0) << devices.err;
  EXPECT_EQ(CountLines(devices.out), 2) << devices.out;
  EXPECT_NE(devices.out.find("phone"), std::string::npos);
  EXPECT_NE(devices.out.find("(this device)"), std::string::npos);

  CommandResult renamed = Ferry("laptop", {"rename", "phone", "tablet"});
  ASSERT_EQ(renamed.exit_code, 0) << renamed.err;
  EXPECT_NE(Ferry("phone", {"devices"}).out.find("tablet"), std::string::npos);
  CommandResult revoked = Ferry("laptop", {"revoke", "tablet"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  CommandResult refused = Ferry("phone", {"devices"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("revoked"), std::string::npos) << refused.err;
  CommandResult after = Ferry("laptop", {"devices"});
  EXPECT_NE(after.out.find("revoked"), std::string::npos) << after.out;
}

TEST_F(CliTest, WrongPassphraseIsRefused) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  std::ofstream(dir_ / "passphrase") << "wrong\n";
  CommandResult refused = Login("phone", "login", "phone");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("wrong user name or passphrase"), std::string::npos)
      << refused.err;
  CommandResult no_device = Ferry("phone", {"devices"});
  EXPECT_EQ(no_device.exit_code, 1);
  EXPECT_NE(no_device.err.find("ferry login"), std::string::npos) << no_device.err;
}

TEST_F(CliTest, PutAndLogThroughTheRealServices) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  ASSERT_EQ(Login("phone", "login", "phone").exit_code, 0);
  ASSERT_EQ(Ferry("laptop", {"collection", "create", "Notes"}).exit_code, 0);
  CommandResult put = Ferry("phone", {"put", "Notes", "note-1", "title=groceries"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  CommandResult log = Ferry("laptop", {"log", "Notes", "--verbose"});
  ASSERT_EQ(log.exit_code, 0) << log.err;
  EXPECT_NE(log.out.find("put note-1 title=groceries"), std::string::npos) << log.out;
  CommandResult list = Ferry("phone", {"collections"});
  EXPECT_NE(list.out.find("Notes"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("head 1"), std::string::npos) << list.out;
}

TEST_F(CliTest, AddSyncStatusConflictsAndExitCodes) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  ASSERT_EQ(Login("phone", "login", "phone").exit_code, 0);
  std::string a = dir_ / "a-docs", b = dir_ / "b-docs";
  CommandResult added = Ferry("laptop", {"add", "Docs", "--path", a});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  ASSERT_EQ(Ferry("phone", {"add", "Docs", "--path", b}).exit_code, 0);
  // The same folder or name twice is refused.
  EXPECT_EQ(Ferry("laptop", {"add", "Other", "--path", a}).exit_code, 1);
  for (int i = 0; i < 12; ++i) std::ofstream(a + "/f" + std::to_string(i)) << "x" << i;
  CommandResult pushed = Ferry("laptop", {"sync"});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_NE(pushed.out.find("pushed 12 items"), std::string::npos) << pushed.out;
  CommandResult pulled = Ferry("phone", {"sync", "Docs"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_NE(pulled.out.find("pulled 12 items"), std::string::npos) << pulled.out;

  std::ofstream(a + "/f1") << "laptop";
  std::ofstream(b + "/f1") << "phone";
  ASSERT_EQ(Ferry("laptop", {"sync"}).exit_code, 0);
  CommandResult conflicted = Ferry("phone", {"sync"});
  EXPECT_EQ(conflicted.exit_code, 4) << conflicted.out << conflicted.err;
  CommandResult conflicts = Ferry("phone", {"conflicts"});
  EXPECT_NE(conflicts.out.find("edit/edit  f1 -> f1.conflict-"), std::string::npos)
      << conflicts.out;
  CommandResult status = Ferry("phone", {"status", "--json"});
  ASSERT_EQ(status.exit_code, 0);
  EXPECT_NE(status.out.find("\"conflicts\": 1"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\"name\": \"Docs\""), std::string::npos) << status.out;

  for (int i = 0; i < 12; ++i) std::filesystem::remove(a + "/f" + std::to_string(i));
  CommandResult guarded = Ferry("laptop", {"sync"});
  EXPECT_EQ(guarded.exit_code, 3) << guarded.err;
  EXPECT_NE(guarded.err.find("--allow-mass-delete"), std::string::npos) << guarded.err;
  EXPECT_EQ(Ferry("laptop", {"sync", "Nope"}).exit_code, 1);
}

TEST_F(CliTest, ContactsConflictShownAndResolved) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  ASSERT_EQ(Login("phone", "login", "phone").exit_code, 0);
  std::string a = dir_ / "a-contacts", b = dir_ / "b-contacts";
  ASSERT_EQ(
      Ferry("laptop", {"add", "People", "--kind", "contacts", "--path", a}).exit_code, 0);
  ASSERT_EQ(
      Ferry("phone", {"add", "People", "--kind", "contacts", "--path", b}).exit_code, 0);
  // Joining with another kind is refused.
  CommandResult wrong =
      Ferry("phone", {"add", "People", "--kind", "calendar", "--path", dir_ / "c"});
  EXPECT_EQ(wrong.exit_code, 1);
  auto card = [](const std::string& note) {
    return "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ada\r\nFN:Ada\r\nNOTE:" + note +
           "\r\nEND:VCARD\r\n";
  };
  std::ofstream(a + "/ada.vcf") << card("first");
  ASSERT_EQ(Ferry("laptop", {"sync"}).exit_code, 0);
  ASSERT_EQ(Ferry("phone", {"sync"}).exit_code, 0);
  // A file made from a record lists UID and the other properties in name order.
  ASSERT_EQ(testing::ReadWholeFile(b + "/ada.vcf"),
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ada\r\nNOTE:first\r\nUID:ada\r\n"
            "END:VCARD\r\n");
  std::ofstream(a + "/ada.vcf") << card("laptop");
  std::ofstream(b + "/ada.vcf") << card("phone");
  ASSERT_EQ(Ferry("laptop", {"sync"}).exit_code, 0);
  CommandResult conflicted = Ferry("phone", {"sync"});
  EXPECT_EQ(conflicted.exit_code, 4) << conflicted.out << conflicted.err;
  CommandResult conflicts = Ferry("phone", {"conflicts"});
  ASSERT_EQ(conflicts.exit_code, 0) << conflicts.err;
  EXPECT_NE(conflicts.out.find("People:1"), std::string::npos) << conflicts.out;
  EXPECT_NE(conflicts.out.find("field edit/edit  ada VCARD/NOTE"), std::string::npos)
      << conflicts.out;
  // Both values are shown, whichever won.
  EXPECT_NE(conflicts.out.find(" laptop\n"), std::string::npos) << conflicts.out;
  EXPECT_NE(conflicts.out.find(" phone\n"), std::string::npos) << conflicts.out;

  EXPECT_EQ(Ferry("phone", {"resolve", "People:1"}).exit_code, 2);  // --take is required
  EXPECT_EQ(Ferry("phone", {"resolve", "nonsense", "--take", "other"}).exit_code, 2);
  EXPECT_EQ(Ferry("phone", {"resolve", "People:7", "--take", "other"}).exit_code, 1);
  CommandResult resolved = Ferry("phone", {"resolve", "People:1", "--take", "Countess"});
  ASSERT_EQ(resolved.exit_code, 0) << resolved.err;
  EXPECT_NE(testing::ReadWholeFile(b + "/ada.vcf").find("\r\nNOTE:Countess\r\n"),
            std::string::npos);
  ASSERT_EQ(Ferry("phone", {"sync"}).exit_code, 0);
  ASSERT_EQ(Ferry("laptop", {"sync"}).exit_code, 0);
  // Rewritten in place: only the note's line changed.
  EXPECT_EQ(testing::ReadWholeFile(a + "/ada.vcf"), card("Countess"));
  EXPECT_EQ(Ferry("phone", {"conflicts"}).out, "");  // resolved ones are hidden
  EXPECT_NE(Ferry("phone", {"conflicts", "--all"}).out.find("(resolved)"),
            std::string::npos);
}

TEST_F(CliTest, CrashWhileAddingACollectionLeavesAUsableDevice) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  std::mt19937_64 random(11);
  int killed = 0;
  for (int round = 0; round < 12; ++round) {
    std::string name = "Col" + std::to_string(round);
    std::string path = dir_ / ("col-" + std::to_string(round));
    // Killed at a random moment (the timeout only places the kill).
    CommandResult first =
        testing::RunFerry(dir_ / "laptop", {"add", name, "--path", path},
                          static_cast<int>(1 + random() % 80));
    killed += first.exit_code == -1;
    // Whatever the kill left, adding again works or says it is done, and every
    // command goes on working.
    CommandResult again = Ferry("laptop", {"add", name, "--path", path});
    EXPECT_TRUE(again.exit_code == 0 ||
                again.err.find("already syncs") != std::string::npos)
        << round << ": " << again.out << again.err;
    CommandResult status = Ferry("laptop", {"status"});
    ASSERT_EQ(status.exit_code, 0) << round << ": " << status.err;
    EXPECT_NE(status.out.find(name), std::string::npos) << status.out;
  }
  EXPECT_GE(killed, 3) << "too few kills landed during `ferry add`";
  std::ofstream(dir_ / "col-0/file") << "data";
  CommandResult sync = Ferry("laptop", {"sync"});
  EXPECT_EQ(sync.exit_code, 0) << sync.out << sync.err;
}

TEST_F(CliTest, PinnedCertificateRefusesAnotherServer) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  // A second server (another certificate) now answers at the address the device knows.
  FerrydProcess impostor(dir_ / "impostor");
  ASSERT_TRUE(impostor.ok()) << impostor.error();
  std::string state_path = dir_ / "laptop/device.toml";
  std::string state = testing::ReadWholeFile(state_path);
  state = std::regex_replace(state, std::regex(server_->address()), impostor.address());
  std::ofstream(state_path) << state;
  CommandResult refused = Ferry("laptop", {"devices"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("changed"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(impostor.fingerprint()), std::string::npos) << refused.err;
  // Logging in again does not quietly trust the new certificate...
  std::vector<std::string> again = {"account",           "create",           "--server",
                                    impostor.address(),  "--user",           "alice",
                                    "--passphrase-file", dir_ / "passphrase"};
  CommandResult still_refused = Ferry("laptop", again);
  EXPECT_EQ(still_refused.exit_code, 1);
  EXPECT_NE(still_refused.err.find("changed"), std::string::npos) << still_refused.err;
  // ...but does when the person names it.
  again.insert(again.end(), {"--fingerprint", impostor.fingerprint()});
  CommandResult accepted = Ferry("laptop", again);
  EXPECT_EQ(accepted.exit_code, 0) << accepted.err;
}

TEST_F(CliTest, FingerprintIsCheckedOnFirstContact) {
  std::vector<std::string> base = {"account",           "create",           "--server",
                                   server_->address(),  "--user",           "alice",
                                   "--passphrase-file", dir_ / "passphrase"};
  std::vector<std::string> wrong = base;
  wrong.insert(wrong.end(), {"--fingerprint", "SHA256:" + std::string(64, '0')});
  CommandResult refused = Ferry("laptop", wrong);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("not the expected"), std::string::npos) << refused.err;
  std::vector<std::string> right = base;
  right.insert(right.end(), {"--fingerprint", server_->fingerprint()});
  CommandResult accepted = Ferry("laptop", right);
  EXPECT_EQ(accepted.exit_code, 0) << accepted.err;
}

TEST_F(CliTest, DeadServerGivesAClearError) {
  ASSERT_EQ(Login("laptop", "create", "laptop").exit_code, 0);
  ASSERT_EQ(server_->Stop(), 0);
  CommandResult refused = Ferry("laptop", {"devices"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("cannot reach ferryd"), std::string::npos) << refused.err;
}

TEST(ProgramTest, UnknownFlagsAreRejected) {
  CommandResult ferryd = RunCommand({FerrydPath(), "--no-such-flag"});
  EXPECT_NE(ferryd.exit_code, 0);
  EXPECT_NE(ferryd.err.find("no-such-flag"), std::string::npos) << ferryd.err;
  CommandResult ferry = RunCommand({FerryPath(), "devices", "--no-such-flag"});
  EXPECT_EQ(ferry.exit_code, 2);  // documented: bad usage
  EXPECT_NE(ferry.err.find("no-such-flag"), std::string::npos) << ferry.err;
  CommandResult help = RunCommand({FerrydPath(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--listen"), std::string::npos);
}

TEST(ProgramTest, UnusableDataDirectoryIsAClearError) {
  TempDir dir;
  std::ofstream(dir / "file") << "not a directory";
  CommandResult result =
      RunCommand({FerrydPath(), "--data", dir / "file/data", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("cannot start"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("file"), std::string::npos) << result.err;
}

TEST(ProgramTest, OneDataDirectoryServesOneFerryd) {
  TempDir dir;
  FerrydProcess first(dir / "data");
  ASSERT_TRUE(first.ok()) << first.error();
  CommandResult second =
      RunCommand({FerrydPath(), "--data", dir / "data", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("another ferryd"), std::string::npos) << second.err;
  EXPECT_EQ(first.Stop(), 0);
}

TEST(ProgramTest, ConfigFileSetsTheSameOptions) {
  TempDir dir;
  std::ofstream(dir / "ferryd.toml") << "data = \"" << (dir / "from-config") << "\"\n"
                                     << "listen = \"127.0.0.1:0\"\n";
  FerrydProcess server(dir / "ignored", {"--config", dir / "ferryd.toml"});
  // --data on the command line wins over the file.
  ASSERT_TRUE(server.ok()) << server.error();
  EXPECT_EQ(server.Stop(), 0);
  struct stat st;
  EXPECT_EQ(::stat((dir / "ignored/tls/fingerprint").c_str(), &st), 0);
  std::ofstream(dir / "bad.toml") << "listen = 7\n";
  CommandResult bad = RunCommand({FerrydPath(), "--config", dir / "bad.toml"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("must be a string"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ferry
