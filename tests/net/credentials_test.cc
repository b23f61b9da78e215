#include "net/credentials.h"

#include <crypt.h>
#include <string.h>

#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "core/passwd_file.h"
#include "core/strings.h"

namespace ringmx::net {
namespace {

using core::Av;
using core::PasswdTable;

// A fresh hash of `password` with `prefix`'s method at `cost` (0: the library's default), made
// with libxcrypt the way mkpasswd and doveadm make them.
std::string Hash(const char* prefix, unsigned long cost, const char* password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof(setting)) == nullptr) {
    ADD_FAILURE() << "crypt_gensalt_rn " << prefix;
    return "";
  }
  crypt_data data;
  memset(&data, 0, sizeof(data));
  const char* hash = crypt_rn(password, setting, &data, sizeof(data));
  if (hash == nullptr) {
    ADD_FAILURE() << "crypt_rn " << setting;
    return "";
  }
  return hash;
}

PasswdTable Table(std::string_view text) {
  absl::StatusOr<PasswdTable> table = PasswdTable::Parse(text, "passwd");
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : *PasswdTable::Parse("", "passwd");
}

class CredentialsTest : public ::testing::Test {
 protected:
  // Cheap costs where the method has one: the tests check answers, not strength.
  const std::string yescrypt_ = Hash("$y$", 1, "yes-pw");
  const std::string sha512_ = Hash("$6$", 1000, "sha-pw");
  const std::string bcrypt_ = Hash("$2b$", 4, "blf-pw");
  const std::string bcrypt2y_ = Hash("$2y$", 4, "blf2y-pw");
  const PasswdTable table_ =
      Table(absl::StrCat("yes:", yescrypt_, "\n", "sha:", sha512_, ":1000:1000::/home/sha::\n",
                         "blf:", bcrypt_, "\n", "dsha:{SHA512-CRYPT}", sha512_, "\n",
                         "dblf:{BLF-CRYPT}", bcrypt2y_, "\n", "dcrypt:{CRYPT}", yescrypt_, "\n"));
};

TEST_F(CredentialsTest, RightPasswordsVerify) {
  EXPECT_TRUE(VerifyPassword(table_, "yes", "yes-pw"));
  EXPECT_TRUE(VerifyPassword(table_, "sha", "sha-pw"));
  EXPECT_TRUE(VerifyPassword(table_, "blf", "blf-pw"));
}

TEST_F(CredentialsTest, DovecotPrefixedHashesVerify) {
  EXPECT_TRUE(VerifyPassword(table_, "dsha", "sha-pw"));
  EXPECT_TRUE(VerifyPassword(table_, "dblf", "blf2y-pw"));
  EXPECT_TRUE(VerifyPassword(table_, "dcrypt", "yes-pw"));
}

TEST_F(CredentialsTest, WrongPasswordsFail) {
  for (std::string_view user : {"yes", "sha", "blf", "dsha", "dblf", "dcrypt"}) {
    EXPECT_FALSE(VerifyPassword(table_, user, "wrong")) << user;
    EXPECT_FALSE(VerifyPassword(table_, user, "")) << user;
  }
  EXPECT_FALSE(VerifyPassword(table_, "yes", "yes-pw "));
  EXPECT_FALSE(VerifyPassword(table_, "yes", "Yes-pw"));
  EXPECT_FALSE(VerifyPassword(table_, "yes", "sha-pw"));  // another user's password
}

TEST_F(CredentialsTest, UnknownUsersFailEvenWithAPasswordThatWorksElsewhere) {
  EXPECT_FALSE(VerifyPassword(table_, "nobody", "yes-pw"));
  EXPECT_FALSE(VerifyPassword(table_, "YES", "yes-pw"));  // names match exactly
  EXPECT_FALSE(VerifyPassword(table_, "", "yes-pw"));
  // The password of the hash used as the unknown users' dummy does not open an unknown user.
  const std::string dummy(table_.dummy_hash());
  ASSERT_FALSE(dummy.empty());
  for (const auto& [user, password] : {std::pair<const char*, const char*>{"yes", "yes-pw"},
                                       {"sha", "sha-pw"},
                                       {"blf", "blf-pw"}}) {
    if (*table_.Find(user) == dummy) {
      EXPECT_FALSE(VerifyPassword(table_, "ghost", password));
    }
  }
}

TEST_F(CredentialsTest, PasswordsCryptCannotTakeFail) {
  const std::string with_nul("yes-pw\0x", 8);
  EXPECT_FALSE(VerifyPassword(table_, "yes", with_nul));
  EXPECT_FALSE(VerifyPassword(table_, "yes", std::string_view("yes-pw\0", 7)));
  const PasswdTable long_table =
      Table(absl::StrCat("long:", Hash("$6$", 1000, std::string(511, 'p').c_str()), "\n"));
  EXPECT_TRUE(VerifyPassword(long_table, "long", std::string(511, 'p')));
  EXPECT_FALSE(VerifyPassword(long_table, "long", std::string(512, 'p')));
}

TEST(CredentialsEmptyTableTest, NobodyVerifies) {
  const PasswdTable empty = Table("");
  EXPECT_FALSE(VerifyPassword(empty, "alice", "anything"));
  EXPECT_FALSE(VerifyPassword(empty, "", ""));
}

TEST_F(CredentialsTest, ManyThreadsAtOnceGetTheRightAnswers) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 5;
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        if (!VerifyPassword(table_, "yes", "yes-pw")) ++wrong[t];
        if (!VerifyPassword(table_, "blf", "blf-pw")) ++wrong[t];
        if (VerifyPassword(table_, "sha", "yes-pw")) ++wrong[t];
        if (VerifyPassword(table_, "ghost", "yes-pw")) ++wrong[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace ringmx::net
