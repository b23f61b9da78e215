#include "tls/cert_info.h"

#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/strings.h"
#include "tls/internal/state.h"

namespace ringmx::tls {
namespace {

absl::Time TimeOf(const ASN1_TIME* t) {
  tm parts{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &parts) != 1) return absl::InfinitePast();
  return absl::FromCivil(absl::CivilSecond(parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                                           parts.tm_hour, parts.tm_min, parts.tm_sec),
                         absl::UTCTimeZone());
}

std::string_view Ia5(const ASN1_IA5STRING* s) {
  return std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                          static_cast<size_t>(ASN1_STRING_length(s)));
}

std::vector<std::string> Sans(X509* leaf) {
  std::vector<std::string> out;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    switch (gn->type) {
      case GEN_DNS:
        out.push_back(absl::StrCat("DNS:", core::Av(Ia5(gn->d.dNSName))));
        break;
      case GEN_EMAIL:
        out.push_back(absl::StrCat("email:", core::Av(Ia5(gn->d.rfc822Name))));
        break;
      case GEN_URI:
        out.push_back(absl::StrCat("URI:", core::Av(Ia5(gn->d.uniformResourceIdentifier))));
        break;
      case GEN_IPADD: {
        const unsigned char* b = ASN1_STRING_get0_data(gn->d.iPAddress);
        const int len = ASN1_STRING_length(gn->d.iPAddress);
        std::string text = "IP:";
        if (len == 4) {
          absl::StrAppend(&text, b[0], ".", b[1], ".", b[2], ".", b[3]);
        } else if (len == 16) {
          for (int j = 0; j < 16; j += 2) {
            absl::StrAppend(&text, j == 0 ? "" : ":", absl::Hex((b[j] << 8) | b[j + 1]));
          }
        } else {
          text += "?";
        }
        out.push_back(std::move(text));
        break;
      }
      default:
        out.push_back("other");
        break;
    }
  }
  GENERAL_NAMES_free(sans);
  return out;
}

std::string KeyTypeOf(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_RSA_PSS:
      return "RSA-PSS";
    case EVP_PKEY_EC:
      return "EC";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    case EVP_PKEY_ED448:
      return "Ed448";
    default:
      return OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  }
}

std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<CertInfo> DescribeChain(const ChainInfo& chain) {
  ERR_clear_error();
  if (chain.pem_chain.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(chain.config_key, ": no certificate"));
  }
  const std::string& pem = chain.pem_chain[0];
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* leaf = bio != nullptr ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (leaf == nullptr) {
    const std::string errors = internal::DrainErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(chain.config_key, ": the leaf cannot be parsed: ", errors));
  }
  CertInfo info;
  info.config_key = chain.config_key;
  for (const std::string& name : chain.names) {
    if (!name.empty()) info.names.push_back(name);
  }
  info.subject = internal::NameRfc2253(X509_get_subject_name(leaf));
  info.issuer = internal::NameRfc2253(X509_get_issuer_name(leaf));
  info.sans = Sans(leaf);
  info.not_before = TimeOf(X509_get0_notBefore(leaf));
  info.not_after = TimeOf(X509_get0_notAfter(leaf));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(leaf, EVP_sha256(), digest, &digest_len) == 1) {
    info.sha256_fingerprint = internal::Hex(digest, digest_len);
  }
  info.chain_length = chain.pem_chain.size();
  if (const EVP_PKEY* key = X509_get0_pubkey(leaf); key != nullptr) {
    info.key_type = KeyTypeOf(key);
    info.key_bits = EVP_PKEY_get_bits(key);
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
      char group[64];
      size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1) {
        info.key_curve.assign(group, len);
      }
    }
  }
  X509_free(leaf);
  ERR_clear_error();
  return info;
}

std::string ExpiryWarning(const CertInfo& info, absl::Time now, absl::Duration soon) {
  const std::string who = absl::StrCat(info.config_key, " (", info.subject, ")");
  if (info.not_after <= now) {
    return absl::StrCat(who, ": expired on ", Utc(info.not_after));
  }
  if (info.not_before > now) {
    return absl::StrCat(who, ": not valid before ", Utc(info.not_before));
  }
  if (info.not_after - now <= soon) {
    const int64_t days = absl::ToInt64Hours(info.not_after - now) / 24;
    return absl::StrCat(who, ": expires in ", days, days == 1 ? " day" : " days", ", on ",
                        Utc(info.not_after));
  }
  return "";
}

std::string OpenSslRuntimeVersion() { return OpenSSL_version(OPENSSL_VERSION); }

}  // namespace ringmx::tls
