// End-to-end tests of the queue tools (`ringmx queue list|show|export|hold|release|delete|flush`)
// against the real server, and of the queue across restarts. What the tools print is checked
// against the segment files read independently (tests/testing/queue_reader.h).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/queue_reader.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

class QueueTest : public ServerTest {
 protected:
  // `ringmx queue -c CONFIG ARGS...`.
  CommandResult Queue(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {RingmxBinary(), "queue", "-c", config_path_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, absl::Seconds(60));
  }
  void Start() {
    ASSERT_NO_FATAL_FAILURE(StartServer(BasicConfig(dir_)));
    config_path_ = server_->config_path();
  }
  // Sends one message with two recipients; its queue id.
  std::string Send(const std::string& subject) {
    auto client = Connect();
    EXPECT_NE(client, nullptr);
    if (client == nullptr) return "";
    SmtpReply reply =
        client->SendMail("sender@remote.test", {"u@example.test", "v@example.test"},
                         absl::StrCat("Subject: ", subject, "\r\n\r\nbody of ", subject, "\r\n"));
    EXPECT_EQ(reply.code, 250) << reply.text;
    client->Command("QUIT");
    return QueuedId(reply.text);
  }
  std::string config_path_;
};

TEST_F(QueueTest, ListShowAndExportShowWhatIsStored) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string a = Send("first");
  const std::string b = Send("second");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());

  CommandResult list = Queue({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, a)) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, b)) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "<sender@remote.test>")) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "<v@example.test> pending")) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "-- 2 messages")) << list.output;
  // Oldest first: ids sort by arrival.
  EXPECT_LT(list.output.find(a), list.output.find(b)) << list.output;

  CommandResult json = Queue({"list", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_TRUE(absl::StartsWith(json.output, "{\"count\":2,")) << json.output;
  EXPECT_TRUE(absl::StrContains(json.output, absl::StrCat("\"id\":\"", a, "\""))) << json.output;
  EXPECT_TRUE(absl::StrContains(json.output, "\"state\":\"pending\"")) << json.output;

  const QueueContents stored = ReadQueue(server_->spool());
  ASSERT_EQ(stored.messages.size(), 2u);
  const StoredMessage& first = stored.messages.at(a);

  CommandResult show = Queue({"show", a});
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_TRUE(absl::StrContains(show.output, "-- envelope\n" + first.json)) << show.output;
  EXPECT_TRUE(absl::StrContains(show.output, "-- message\n" + first.eml)) << show.output;
  EXPECT_TRUE(absl::StrContains(first.eml, "body of first")) << first.eml;

  CommandResult show_json = Queue({"show", a, "--json"});
  ASSERT_EQ(show_json.exit_code, 0) << show_json.output;
  EXPECT_TRUE(absl::StrContains(show_json.output, "\"envelope\":" + first.json))
      << show_json.output;

  const std::filesystem::path out = dir_ / "export";
  std::filesystem::create_directories(out);
  CommandResult exported = Queue({"export", a, out.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_EQ(ReadWholeFile(out / (a + ".eml")), first.eml);
  EXPECT_EQ(ReadWholeFile(out / (a + ".json")), first.json);
  // Never overwrites.
  CommandResult again = Queue({"export", a, out.string()});
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_EQ(ReadWholeFile(out / (a + ".eml")), first.eml);

  CommandResult unknown = Queue({"show", "NOSUCHID"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_TRUE(absl::StrContains(unknown.output, "no message NOSUCHID")) << unknown.output;
  CommandResult usage = Queue({"hold"});
  EXPECT_NE(usage.exit_code, 0) << usage.output;
  EXPECT_EQ(server_->Stat("queue_messages"), 2);
}

TEST_F(QueueTest, HoldReleaseDeleteAreDurableAcrossRestarts) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string a = Send("keep");
  const std::string b = Send("hold");
  const std::string c = Send("delete");

  CommandResult hold = Queue({"hold", b});
  ASSERT_EQ(hold.exit_code, 0) << hold.output;
  EXPECT_TRUE(absl::StrContains(hold.output, "ok held " + b)) << hold.output;
  CommandResult del = Queue({"delete", c});
  ASSERT_EQ(del.exit_code, 0) << del.output;
  CommandResult del_again = Queue({"delete", c});
  EXPECT_EQ(del_again.exit_code, 1) << "deleting twice must fail: " << del_again.output;

  // The operations are in the log: an independent replay sees them.
  QueueContents stored = ReadQueue(server_->spool());
  ASSERT_EQ(stored.messages.size(), 2u);
  EXPECT_FALSE(stored.messages.at(a).entry.held);
  EXPECT_TRUE(stored.messages.at(b).entry.held);
  EXPECT_FALSE(stored.messages.contains(c));
  EXPECT_TRUE(absl::StrContains(Queue({"list"}).output, b + "         ")) << Queue({"list"}).output;
  EXPECT_TRUE(absl::StrContains(Queue({"list"}).output, "(held)"));

  // Restart: the server rebuilds the same queue from its log.
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(server_->Stat("queue_messages"), 2);
  CommandResult list = Queue({"list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "\"count\":2")) << list.output;
  EXPECT_FALSE(absl::StrContains(list.output, c)) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, absl::StrCat("\"id\":\"", b, "\""))) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "\"held\":true")) << list.output;

  CommandResult release = Queue({"release", b});
  ASSERT_EQ(release.exit_code, 0) << release.output;
  EXPECT_FALSE(ReadQueue(server_->spool()).messages.at(b).entry.held);
  CommandResult flush = Queue({"flush"});
  ASSERT_EQ(flush.exit_code, 0) << flush.output;
  EXPECT_TRUE(absl::StrContains(flush.output, "ok 0 deferred recipients due now")) << flush.output;

  // Everything deleted: the queue is empty, and stays empty after a restart.
  ASSERT_EQ(Queue({"delete", a}).exit_code, 0);
  ASSERT_EQ(Queue({"delete", b}).exit_code, 0);
  EXPECT_EQ(Queue({"list"}).output, "queue is empty\n");
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(server_->Stat("queue_messages"), 0);
  EXPECT_TRUE(ReadQueue(server_->spool()).messages.empty());
}

TEST_F(QueueTest, ListShowAndExportWorkWhileTheServerIsDown) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string a = Send("offline");
  const std::string spool = server_->spool();
  server_.reset();

  CommandResult list = Queue({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, "reading the queue directory instead")) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, a)) << list.output;
  const std::filesystem::path out = dir_ / "offline-export";
  std::filesystem::create_directories(out);
  CommandResult exported = Queue({"export", a, out.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_EQ(ReadWholeFile(out / (a + ".eml")), ReadQueue(spool).messages.at(a).eml);
  CommandResult hold = Queue({"hold", a});
  EXPECT_EQ(hold.exit_code, 1) << hold.output;
  EXPECT_TRUE(absl::StrContains(hold.output, "not running")) << hold.output;
}

}  // namespace
}  // namespace ringmx::testing
