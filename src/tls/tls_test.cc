#include "src/tls/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/tls/openssl_ptr.h"

namespace ferry::tls {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kFingerprintRegex[] = "SHA256:[0-9a-f]{64}";

class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "/ferry_tls_test.XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr) << std::strerror(errno);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string tls(const std::string& name) const {
    return absl::StrCat(path_, "/tls/", name);
  }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

X509Ptr ParseCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PkeyPtr ParseKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// ---------------------------------------------------------------------------------
// LoadOrCreateServerCertificate

TEST(LoadOrCreateServerCertificateTest, CreatesFiles) {
  TempDir dir;
  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();

  EXPECT_THAT(files->cert_pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(files->key_pem, HasSubstr("PRIVATE KEY-----"));
  EXPECT_THAT(files->fingerprint, MatchesRegex(kFingerprintRegex));
  EXPECT_EQ(ReadFile(dir.tls("cert.pem")), files->cert_pem);
  EXPECT_EQ(ReadFile(dir.tls("key.pem")), files->key_pem);
  EXPECT_EQ(ReadFile(dir.tls("fingerprint")), files->fingerprint + "\n");
  EXPECT_EQ(ModeOf(dir.tls("key.pem")), 0600u);
  EXPECT_EQ(ModeOf(dir.path() + "/tls"), 0700u);

  absl::StatusOr<std::string> fingerprint = FingerprintOfPem(files->cert_pem);
  ASSERT_TRUE(fingerprint.ok()) << fingerprint.status();
  EXPECT_EQ(*fingerprint, files->fingerprint);

  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() + "/tls")) {
    names.insert(entry.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"cert.pem", "fingerprint", "key.pem"}));
}

TEST(LoadOrCreateServerCertificateTest, CertificateIsItsOwnTrustAnchor) {
  TempDir dir;
  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();
  X509Ptr cert = ParseCert(files->cert_pem);
  ASSERT_NE(cert, nullptr);
  PkeyPtr key = ParseKey(files->key_pem);
  ASSERT_NE(key, nullptr);

  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  char group[64] = {};
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group, sizeof(group), nullptr), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(ASN1_STRING_length(X509_get0_serialNumber(cert.get())), 16);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);

  EXPECT_EQ(X509_check_host(cert.get(), "ferryd", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_NE(X509_check_host(cert.get(), "example.com", 0, 0, nullptr), 1);

  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_GE(days, 3650);
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(cert.get()), nullptr), 1);
  EXPECT_GE(days * 86400 + seconds, 3500);

  X509StorePtr store(X509_STORE_new());
  ASSERT_EQ(X509_STORE_add_cert(store.get(), cert.get()), 1);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  ASSERT_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr), 1);
  ASSERT_EQ(X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER), 1);
  ASSERT_EQ(
      X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx.get()), "ferryd", 0), 1);
  EXPECT_EQ(X509_verify_cert(ctx.get()), 1)
      << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

TEST(LoadOrCreateServerCertificateTest, SecondCallLoadsTheSameCertificate) {
  TempDir dir;
  absl::StatusOr<CertificateFiles> first = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<CertificateFiles> second = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->fingerprint, first->fingerprint);
  EXPECT_EQ(second->cert_pem, first->cert_pem);
  EXPECT_EQ(second->key_pem, first->key_pem);
}

TEST(LoadOrCreateServerCertificateTest, RewritesMissingOrStaleFingerprint) {
  TempDir dir;
  absl::StatusOr<CertificateFiles> first = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();

  ASSERT_EQ(::unlink(dir.tls("fingerprint").c_str()), 0);
  ASSERT_TRUE(LoadOrCreateServerCertificate(dir.path()).ok());
  EXPECT_EQ(ReadFile(dir.tls("fingerprint")), first->fingerprint + "\n");

  WriteFile(dir.tls("fingerprint"), "stale\n");
  ASSERT_TRUE(LoadOrCreateServerCertificate(dir.path()).ok());
  EXPECT_EQ(ReadFile(dir.tls("fingerprint")), first->fingerprint + "\n");
}

TEST(LoadOrCreateServerCertificateTest, CorruptCertificateIsReportedNotReplaced) {
  TempDir dir;
  ASSERT_TRUE(LoadOrCreateServerCertificate(dir.path()).ok());
  const std::string garbage = "-----BEGIN CERTIFICATE-----\nnot base64!\n";
  WriteFile(dir.tls("cert.pem"), garbage);

  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(files.status().message(), HasSubstr(dir.tls("cert.pem")));
  EXPECT_EQ(ReadFile(dir.tls("cert.pem")), garbage);
}

TEST(LoadOrCreateServerCertificateTest, CorruptKeyIsReportedNotReplaced) {
  TempDir dir;
  ASSERT_TRUE(LoadOrCreateServerCertificate(dir.path()).ok());
  WriteFile(dir.tls("key.pem"), "");

  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(files.status().message(), HasSubstr(dir.tls("key.pem")));
  EXPECT_EQ(ReadFile(dir.tls("key.pem")), "");
}

TEST(LoadOrCreateServerCertificateTest, MismatchedKeyIsReported) {
  TempDir dir;
  TempDir other;
  absl::StatusOr<CertificateFiles> mine = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(mine.ok()) << mine.status();
  absl::StatusOr<CertificateFiles> theirs = LoadOrCreateServerCertificate(other.path());
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  WriteFile(dir.tls("key.pem"), theirs->key_pem);

  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(files.status().message(), HasSubstr("does not belong"));
  EXPECT_EQ(ReadFile(dir.tls("cert.pem")), mine->cert_pem);
}

TEST(LoadOrCreateServerCertificateTest, HalfAPairIsReportedNotCompleted) {
  TempDir dir;
  absl::StatusOr<CertificateFiles> first = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(::unlink(dir.tls("cert.pem").c_str()), 0);

  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(files.status().message(), HasSubstr(dir.tls("cert.pem")));
  EXPECT_EQ(ReadFile(dir.tls("key.pem")), first->key_pem);
  EXPECT_FALSE(std::filesystem::exists(dir.tls("cert.pem")));
}

TEST(LoadOrCreateServerCertificateTest, KeyLeftByACrashedFirstStartIsReplaced) {
  TempDir dir;
  absl::StatusOr<CertificateFiles> first = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  // As if the first start died after writing the key: no certificate, no fingerprint.
  ASSERT_EQ(::unlink(dir.tls("cert.pem").c_str()), 0);
  ASSERT_EQ(::unlink(dir.tls("fingerprint").c_str()), 0);

  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_NE(files->fingerprint, first->fingerprint);
  EXPECT_EQ(ReadFile(dir.tls("fingerprint")), files->fingerprint + "\n");
}

TEST(LoadOrCreateServerCertificateTest, UnreadableKeyIsReported) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  ASSERT_TRUE(LoadOrCreateServerCertificate(dir.path()).ok());
  ASSERT_EQ(::chmod(dir.tls("key.pem").c_str(), 0), 0);

  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(files.status().message(), HasSubstr(dir.tls("key.pem")));
}

TEST(LoadOrCreateServerCertificateTest, MissingDataDirIsReported) {
  TempDir dir;
  std::string missing = dir.path() + "/does/not/exist";
  absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(missing);
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(files.status().message(), HasSubstr(missing));
}

// ---------------------------------------------------------------------------------
// FingerprintOfPem and NormalizeFingerprint

TEST(FingerprintOfPemTest, RejectsGarbage) {
  EXPECT_EQ(FingerprintOfPem("hello").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(FingerprintOfPem("").ok());
}

TEST(NormalizeFingerprintTest, AcceptsCommonSpellings) {
  const std::string hex =
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  const std::string expected = "SHA256:" + hex;
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  std::string colons;
  for (size_t i = 0; i < upper.size(); i += 2) {
    if (i > 0) colons += ':';
    colons += upper.substr(i, 2);
  }
  for (const std::string& text :
       {expected, hex, "sha256:" + hex, "SHA256:" + upper, upper, colons,
        "SHA256:" + colons, "sha256:" + colons, "  " + expected + "\n"}) {
    absl::StatusOr<std::string> normalized = NormalizeFingerprint(text);
    ASSERT_TRUE(normalized.ok()) << text << ": " << normalized.status();
    EXPECT_EQ(*normalized, expected) << text;
  }
}

TEST(NormalizeFingerprintTest, RejectsMalformedInput) {
  const std::string hex =
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  for (const std::string& text :
       {std::string(), std::string("SHA256:"), hex.substr(1), hex + "0",
        "SHA256:" + hex.substr(2), hex.substr(1) + "g", "MD5:" + hex,
        "SHA1:" + hex.substr(0, 40), "SHA256: " + hex,
        hex.substr(0, 32) + " " + hex.substr(32)}) {
    absl::StatusOr<std::string> normalized = NormalizeFingerprint(text);
    EXPECT_EQ(normalized.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << text << "\"";
  }
}

// ---------------------------------------------------------------------------------
// FetchServerCertificate

// A loopback listening socket on an ephemeral port.
class Listener {
 public:
  explicit Listener(int family) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&addr);
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = in6addr_loopback;
      len = sizeof(*in6);
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 4) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      Close();
      return;
    }
    port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&addr)->sin_port
                                    : reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  }
  ~Listener() { Close(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  int port() const { return port_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Accepts one connection, waiting at most 10 s; -1 on failure.
  int AcceptOne() const {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 10000) != 1) return -1;
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    timeval tv{10, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return conn;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

int SelectH2(SSL*, const unsigned char** out, unsigned char* out_len,
             const unsigned char* in, unsigned int in_len, void* arg) {
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_len, kH2, sizeof(kH2), in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // as gRPC does
  }
  *out = selected;
  *static_cast<bool*>(arg) = true;
  return SSL_TLSEXT_ERR_OK;
}

// Serves one TLS handshake with `files` on a thread, like a gRPC server would.
class OneShotTlsServer {
 public:
  OneShotTlsServer(int family, const CertificateFiles& files) : listener_(family) {
    if (!listener_.ok()) return;
    X509Ptr cert = ParseCert(files.cert_pem);
    PkeyPtr key = ParseKey(files.key_pem);
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    if (!ctx_ || SSL_CTX_use_certificate(ctx_.get(), cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx_.get(), key.get()) != 1) {
      ctx_.reset();
      return;
    }
    SSL_CTX_set_num_tickets(ctx_.get(), 0);
    SSL_CTX_set_alpn_select_cb(ctx_.get(), SelectH2, &negotiated_h2_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~OneShotTlsServer() { Join(); }

  bool ok() const { return ctx_ != nullptr; }
  int port() const { return listener_.port(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // Valid after Join().
  bool handshake_ok() const { return handshake_ok_; }
  bool negotiated_h2() const { return negotiated_h2_; }
  const std::string& server_name() const { return server_name_; }

 private:
  void Serve() {
    sigset_t sigpipe;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
    int conn = listener_.AcceptOne();
    if (conn < 0) return;
    SslPtr ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), conn);
    handshake_ok_ = SSL_accept(ssl.get()) == 1;
    if (const char* name = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name)) {
      server_name_ = name;
    }
    if (handshake_ok_) SSL_shutdown(ssl.get());
    ssl.reset();
    ERR_clear_error();
    ::close(conn);
  }

  Listener listener_;
  SslCtxPtr ctx_;
  bool negotiated_h2_ = false;
  bool handshake_ok_ = false;
  std::string server_name_;
  std::thread thread_;
};

class FetchServerCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<CertificateFiles> files = LoadOrCreateServerCertificate(dir_.path());
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *std::move(files);
  }

  void ExpectFetches(int family, const std::string& host) {
    OneShotTlsServer server(family, files_);
    if (!server.ok() && family == AF_INET6) GTEST_SKIP() << "no IPv6 loopback";
    ASSERT_TRUE(server.ok());
    std::string address = absl::StrCat(host, ":", server.port());
    absl::StatusOr<std::string> pem = FetchServerCertificate(address, 10000);
    server.Join();
    ASSERT_TRUE(pem.ok()) << pem.status();
    absl::StatusOr<std::string> fingerprint = FingerprintOfPem(*pem);
    ASSERT_TRUE(fingerprint.ok()) << fingerprint.status();
    EXPECT_EQ(*fingerprint, files_.fingerprint);
    EXPECT_TRUE(server.handshake_ok());
    EXPECT_TRUE(server.negotiated_h2());
    EXPECT_EQ(server.server_name(), kServerName);
  }

  TempDir dir_;
  CertificateFiles files_;
};

TEST_F(FetchServerCertificateTest, FetchesOverIpv4) {
  ExpectFetches(AF_INET, "127.0.0.1");
}

TEST_F(FetchServerCertificateTest, FetchesViaLocalhost) {
  ExpectFetches(AF_INET, "localhost");
}

TEST_F(FetchServerCertificateTest, FetchesOverBracketedIpv6) {
  ExpectFetches(AF_INET6, "[::1]");
}

TEST_F(FetchServerCertificateTest, ClosedPortIsUnavailableQuickly) {
  int port = 0;
  {
    Listener listener(AF_INET);
    ASSERT_TRUE(listener.ok());
    port = listener.port();
  }
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> pem =
      FetchServerCertificate(absl::StrCat("127.0.0.1:", port), 10000);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(pem.ok());
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(pem.status().message(),
              HasSubstr(absl::StrCat("cannot reach ferryd at 127.0.0.1:", port)));
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST_F(FetchServerCertificateTest, SilentServerTimesOut) {
  Listener listener(AF_INET);  // completes TCP handshakes, never speaks TLS
  ASSERT_TRUE(listener.ok());
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> pem =
      FetchServerCertificate(absl::StrCat("127.0.0.1:", listener.port()), 300);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(pem.ok());
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(pem.status().message(), HasSubstr("TLS handshake with 127.0.0.1:"));
  EXPECT_THAT(pem.status().message(), HasSubstr("timed out"));
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(FetchServerCertificateTest, ServerThatHangsUpFailsTheHandshake) {
  Listener listener(AF_INET);
  ASSERT_TRUE(listener.ok());
  std::thread hang_up([&listener] {
    int conn = listener.AcceptOne();
    if (conn >= 0) ::close(conn);
  });
  absl::StatusOr<std::string> pem =
      FetchServerCertificate(absl::StrCat("127.0.0.1:", listener.port()), 10000);
  hang_up.join();
  ASSERT_FALSE(pem.ok());
  EXPECT_EQ(pem.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(pem.status().message(), HasSubstr("TLS handshake with 127.0.0.1:"));
}

TEST(FetchServerCertificateAddressTest, RejectsMalformedAddresses) {
  for (const char* address :
       {"", "localhost", "localhost:", ":443", "localhost:http", "localhost:0",
        "localhost:65536", "localhost:+80", "::1:443", "[::1", "[::1]443", "[]:443"}) {
    absl::StatusOr<std::string> pem = FetchServerCertificate(address, 1000);
    EXPECT_EQ(pem.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << address << "\": " << pem.status();
  }
}

}  // namespace
}  // namespace ferry::tls
