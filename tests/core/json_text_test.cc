// core/json_text.h: the readable form `ringmx ctl` prints of a JSON reply.
#include "core/json_text.h"

#include <string>

#include "gtest/gtest.h"

#include "core/json.h"

namespace ringmx::core {
namespace {

std::string Text(std::string_view json) {
  absl::StatusOr<JsonValue> value = ParseJson(json);
  EXPECT_TRUE(value.ok()) << value.status();
  return value.ok() ? JsonToText(*value) : "";
}

TEST(JsonToTextTest, ScalarsNestedObjectsAndArrays) {
  EXPECT_EQ(Text(R"({"generation":1,"draining":false,"name":"mx","none":null,)"
                 R"("replies":{"2xx":3,"by_code":{"2.0.0":2}},"empty":{},"list":[],)"
                 R"("names":["a","b"],"shards":[{"shard":0,"open":1},{"shard":1,"open":0}]})"),
            "generation: 1\n"
            "draining: false\n"
            "name: mx\n"
            "none: null\n"
            "replies:\n"
            "  2xx: 3\n"
            "  by_code:\n"
            "    2.0.0: 2\n"
            "empty: -\n"
            "list: -\n"
            "names: a, b\n"
            "shards:\n"
            "  - shard: 0\n"
            "    open: 1\n"
            "  - shard: 1\n"
            "    open: 0\n");
}

TEST(JsonToTextTest, ObjectsInsideArraysInsideObjects) {
  EXPECT_EQ(Text(R"({"certificates":[{"key":"tls.cert","names":["mx"],"kt":{"bits":256}}]})"),
            "certificates:\n"
            "  - key: tls.cert\n"
            "    names: mx\n"
            "    kt:\n"
            "      bits: 256\n");
}

TEST(JsonToTextTest, TopLevelScalarAndArray) {
  EXPECT_EQ(Text(R"("ok")"), "ok\n");
  EXPECT_EQ(Text(R"([1,{"a":2}])"), "- 1\n- a: 2\n");
}

}  // namespace
}  // namespace ringmx::core
