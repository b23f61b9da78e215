#include "tls/client_context.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "tls/internal/config_files.h"
#include "tls/internal/state.h"

namespace ringmx::tls {

using internal::ClientCtxState;
using internal::WithErrors;

struct ClientTlsContext::Impl {
  // One SSL_CTX and the state its sessions reach through ex_data.
  struct Ctx {
    SSL_CTX* ctx = nullptr;  // nullptr: no TLS (tls = "none", or an lmtp: bounce hop)
    std::unique_ptr<ClientCtxState> state;
  };
  std::vector<Ctx> routes;  // parallel to config.routes
  Ctx bounce;

  ~Impl() {
    for (Ctx& c : routes) SSL_CTX_free(c.ctx);
    SSL_CTX_free(bounce.ctx);
  }
};

namespace {

// One client context. `where` is the config key for messages ("route[2]", "delivery"); `ca_file`
// and `tls_name` are set for tls = "verify" only. `state` is reached from the context's ex_data
// and must outlive it.
absl::StatusOr<SSL_CTX*> BuildClientCtx(const std::string& where, const std::string& ca_file,
                                        const std::string& tls_name, const ClientCtxState* state) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    return absl::InternalError(absl::StrCat(where, ": SSL_CTX_new", WithErrors()));
  }
  auto fail = [&](absl::Status s) {
    SSL_CTX_free(ctx);
    return s;
  };
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return fail(
        absl::InternalError(absl::StrCat(where, ": set minimum TLS version", WithErrors())));
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
  // No resumption: each delivery connection does a full handshake, so every connection to a
  // verify route is checked against the current CA bundle and nothing is shared between shards.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, internal::kDefaultCiphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, internal::kDefaultCipherSuites) != 1) {
    return fail(absl::InternalError(absl::StrCat(where, ": set cipher lists", WithErrors())));
  }
  SSL_CTX_set_ex_data(ctx, internal::ClientCtxStateIndex(), const_cast<ClientCtxState*>(state));

  if (!state->verify) {
    // Opportunistic (Postfix "may"): encryption against passive eavesdroppers only. The callback
    // still records why the chain is untrusted, for the facts.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, internal::VerifyCallback);
    ERR_clear_error();
    return ctx;
  }

  const std::string key = absl::StrCat(where, ".tls_ca");
  // Open it first for an errno message ("No such file or directory") rather than OpenSSL's.
  absl::StatusOr<BIO*> bio = internal::OpenFile(key, ca_file);
  if (!bio.ok()) return fail(bio.status());
  BIO_free(*bio);
  // Only the configured bundle is trusted, never the system store: the route names its relay's
  // CA (often a private one).
  if (SSL_CTX_load_verify_file(ctx, ca_file.c_str()) != 1) {
    return fail(internal::ConfigError(key, ca_file, "cannot load CA certificates" + WithErrors()));
  }
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (X509_VERIFY_PARAM_set1_host(param, tls_name.data(), tls_name.size()) != 1) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        where, ".tls_name: \"", tls_name, "\": not usable as a certificate name", WithErrors())));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, internal::VerifyCallback);
  SSL_CTX_set_verify_depth(ctx, 8);
  ERR_clear_error();
  return ctx;
}

}  // namespace

ClientTlsContext::~ClientTlsContext() = default;

absl::StatusOr<std::shared_ptr<const ClientTlsContext>> ClientTlsContext::Build(
    const core::Config& config) {
  if (config.routes.empty()) return std::shared_ptr<const ClientTlsContext>();
  ERR_clear_error();
  std::shared_ptr<ClientTlsContext> context(new ClientTlsContext());
  context->impl_ = std::make_unique<Impl>();
  Impl& impl = *context->impl_;

  impl.routes.resize(config.routes.size());
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const core::RouteConfig& route = config.routes[i];
    if (route.tls == core::RouteTls::kNone) continue;
    auto state = std::make_unique<ClientCtxState>();
    state->where = absl::StrCat("route[", i, "]");
    state->verify = route.tls == core::RouteTls::kVerify;
    if (state->verify) {
      // core/config.cc already requires both with "verify"; a hand-built Config may not.
      if (route.tls_ca.empty() || route.tls_name.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(state->where, ".",
                                                       route.tls_ca.empty() ? "tls_ca" : "tls_name",
                                                       ": required with tls = \"verify\""));
      }
      state->tls_name = route.tls_name;
    }
    absl::StatusOr<SSL_CTX*> ctx =
        BuildClientCtx(state->where, route.tls_ca, state->tls_name, state.get());
    if (!ctx.ok()) return ctx.status();
    impl.routes[i].ctx = *ctx;
    impl.routes[i].state = std::move(state);
  }

  const std::optional<core::NextHop>& bounce = config.delivery.bounce_next_hop;
  if (bounce.has_value() && bounce->protocol == core::HopProtocol::kSmtp) {
    auto state = std::make_unique<ClientCtxState>();
    state->where = "delivery.bounce_next_hop";
    absl::StatusOr<SSL_CTX*> ctx = BuildClientCtx(state->where, "", "", state.get());
    if (!ctx.ok()) return ctx.status();
    impl.bounce.ctx = *ctx;
    impl.bounce.state = std::move(state);
  }
  ERR_clear_error();
  return std::shared_ptr<const ClientTlsContext>(std::move(context));
}

SSL_CTX* ClientTlsContext::ForRoute(size_t route_index) const {
  if (impl_ == nullptr || route_index >= impl_->routes.size()) return nullptr;
  return impl_->routes[route_index].ctx;
}

std::string_view ClientTlsContext::ServerNameForRoute(size_t route_index) const {
  if (impl_ == nullptr || route_index >= impl_->routes.size()) return {};
  const Impl::Ctx& c = impl_->routes[route_index];
  return c.state != nullptr ? std::string_view(c.state->tls_name) : std::string_view();
}

SSL_CTX* ClientTlsContext::ForBounce() const {
  return impl_ != nullptr ? impl_->bounce.ctx : nullptr;
}

}  // namespace ringmx::tls
