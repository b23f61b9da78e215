// A ServerTest whose suite shares one throwaway test PKI (tests/testing/test_pki.h), made once
// per suite: for the end-to-end tests that run TLS listeners.
#pragma once

#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_pki.h"

namespace ringmx::testing {

class PkiServerTest : public ServerTest {
 protected:
  static void SetUpTestSuite() {
    pki_dir_ = new TempDir();
    absl::StatusOr<TestPki> pki = CreateTestPki(pki_dir_->path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*pki);
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete pki_dir_;
    pki_ = nullptr;
    pki_dir_ = nullptr;
  }

  static inline TempDir* pki_dir_ = nullptr;
  static inline TestPki* pki_ = nullptr;
};

}  // namespace ringmx::testing
