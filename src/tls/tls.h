// TLS certificates for ferryd and certificate pinning for clients (OpenSSL).
#ifndef FERRY_TLS_TLS_H_
#define FERRY_TLS_TLS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::tls {

struct CertificateFiles {
  std::string cert_pem;     // the certificate, PEM
  std::string key_pem;      // its private key, PEM
  std::string fingerprint;  // "SHA256:" + 64 lowercase hex digits of the DER certificate
};

// Loads DIR/tls/cert.pem and DIR/tls/key.pem, or on first start makes a self-signed
// certificate (ECDSA P-256, valid 10 years, subject CN=ferryd, SAN DNS:ferryd,
// DNS:localhost, IP:127.0.0.1, IP:::1) and writes cert.pem, key.pem (mode 0600) and
// fingerprint (one line) there, each atomically (temp, fsync, rename, fsync dir).
absl::StatusOr<CertificateFiles> LoadOrCreateServerCertificate(std::string_view data_dir);

// "SHA256:<hex>" of the first certificate in `cert_pem`.
absl::StatusOr<std::string> FingerprintOfPem(std::string_view cert_pem);

// Normalizes a fingerprint given by a person: accepts "SHA256:" or "sha256:" prefixes or
// none, hex with or without ':' separators, any case. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> NormalizeFingerprint(std::string_view text);

// Connects to `host:port` over TCP, completes a TLS handshake without verifying the
// peer, and returns the certificate the server presents (PEM). Bounded by `timeout_ms`
// for the connection and handshake together. UNAVAILABLE when the server cannot be
// reached.
absl::StatusOr<std::string> FetchServerCertificate(std::string_view host_port,
                                                   int timeout_ms);

// The name every ferryd certificate carries, used as the TLS target name by clients
// so that one certificate serves any address the server is reached at.
inline constexpr char kServerName[] = "ferryd";

}  // namespace ferry::tls

#endif  // FERRY_TLS_TLS_H_
