#include "src/tls/tls.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/core/file_util.h"
#include "src/core/status_macros.h"
#include "src/tls/openssl_ptr.h"

namespace ferry::tls {
namespace {

// A certificate, key or fingerprint file larger than this is not one of ours.
constexpr size_t kPemFileBytesMax = 64 << 10;
constexpr int kSerialBytes = 16;
constexpr long kValidityDays = 3653;  // ten years, leap days included
constexpr char kCertFile[] = "cert.pem";
constexpr char kKeyFile[] = "key.pem";
constexpr char kFingerprintFile[] = "fingerprint";
constexpr char kFingerprintPrefix[] = "SHA256:";
constexpr size_t kFingerprintHexDigits = 64;

// ---------------------------------------------------------------------------------
// RAII for OpenSSL objects and file descriptors.

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes the descriptor, reporting close()'s errno (0 on success).
  int Close() {
    if (fd_ < 0) return 0;
    int rc = ::close(std::exchange(fd_, -1));
    return rc == 0 ? 0 : errno;
  }

 private:
  void Reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  int fd_ = -1;
};

// Debian's Abseil is built with its own string_view, distinct from std::string_view.
absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

// ---------------------------------------------------------------------------------
// Error helpers.

// Drains OpenSSL's error queue of this thread into one string.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// Empties this thread's OpenSSL error queue on entry and exit, so that errors
// reported are ours and none are left behind for other OpenSSL users (gRPC).
class ScopedErrorQueue {
 public:
  ScopedErrorQueue() { ERR_clear_error(); }
  ~ScopedErrorQueue() { ERR_clear_error(); }
  ScopedErrorQueue(const ScopedErrorQueue&) = delete;
  ScopedErrorQueue& operator=(const ScopedErrorQueue&) = delete;
};

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

std::string ErrnoText(int err) { return std::strerror(err); }

// ---------------------------------------------------------------------------------
// PEM and DER helpers.

absl::StatusOr<BioPtr> MemoryBioOf(absl::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("PEM data too large");
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  return bio;
}

std::string MemoryBioContents(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

absl::StatusOr<X509Ptr> ParseCertificatePem(absl::string_view pem) {
  FERRY_ASSIGN_OR_RETURN(BioPtr bio, MemoryBioOf(pem));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a PEM certificate: ", OpenSslErrors()));
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem) {
  FERRY_ASSIGN_OR_RETURN(BioPtr bio, MemoryBioOf(pem));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a PEM private key: ", OpenSslErrors()));
  }
  return key;
}

absl::StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("PEM_write_bio_X509");
  }
  return MemoryBioContents(bio.get());
}

absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  return MemoryBioContents(bio.get());
}

absl::StatusOr<std::string> FingerprintOf(X509* cert) {
  int der_size = i2d_X509(cert, nullptr);
  if (der_size <= 0) return OpenSslError("i2d_X509");
  std::string der(static_cast<size_t>(der_size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_X509(cert, &out) != der_size) return OpenSslError("i2d_X509");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(der.data(), der.size(), digest, &digest_size, EVP_sha256(), nullptr) !=
      1) {
    return OpenSslError("SHA-256");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string fingerprint = kFingerprintPrefix;
  for (unsigned int i = 0; i < digest_size; ++i) {
    fingerprint += kHex[digest[i] >> 4];
    fingerprint += kHex[digest[i] & 0xf];
  }
  return fingerprint;
}

// ---------------------------------------------------------------------------------
// Certificate generation.

absl::StatusOr<PkeyPtr> GenerateKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpenSslError("generating an EC P-256 key");
  return key;
}

absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[kSerialBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return OpenSslError("RAND_bytes");
  bytes[0] &= 0x7f;  // positive, and 16 bytes of DER content
  bytes[0] |= 0x40;  // never zero, never shorter
  BignumPtr serial(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!serial ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("setting the certificate serial");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert) {
  if (X509_gmtime_adj(X509_getm_notBefore(cert), -60 * 60) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), kValidityDays, 0, nullptr) == nullptr) {
    return OpenSslError("setting the certificate validity");
  }
  return absl::OkStatus();
}

absl::Status SetName(X509* cert) {
  X509NamePtr name(X509_NAME_new());
  if (!name ||
      X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(kServerName), -1,
                                 -1, 0) != 1 ||
      X509_set_subject_name(cert, name.get()) != 1 ||
      X509_set_issuer_name(cert, name.get()) != 1) {
    return OpenSslError("setting the certificate name");
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("adding certificate extension ", value));
  }
  return absl::OkStatus();
}

absl::Status AddExtensions(X509* cert) {
  FERRY_RETURN_IF_ERROR(AddExtension(cert, NID_basic_constraints, "critical,CA:TRUE"));
  FERRY_RETURN_IF_ERROR(
      AddExtension(cert, NID_key_usage, "critical,digitalSignature,keyCertSign"));
  FERRY_RETURN_IF_ERROR(AddExtension(cert, NID_subject_key_identifier, "hash"));
  return AddExtension(cert, NID_subject_alt_name,
                      "DNS:ferryd,DNS:localhost,IP:127.0.0.1,IP:::1");
}

absl::StatusOr<X509Ptr> MakeSelfSignedCertificate(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("creating the certificate");
  }
  FERRY_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  FERRY_RETURN_IF_ERROR(SetValidity(cert.get()));
  FERRY_RETURN_IF_ERROR(SetName(cert.get()));
  FERRY_RETURN_IF_ERROR(AddExtensions(cert.get()));
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) {
    return OpenSslError("signing the certificate");
  }
  return cert;
}

// ---------------------------------------------------------------------------------
// Files.

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (dir.empty() || dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

// Whether `path` exists; errors other than "no such file" are reported.
absl::StatusOr<bool> FileExists(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return ferry::ErrnoStatus(errno, "cannot stat", path);
}

absl::Status MakePrivateDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return absl::OkStatus();
  if (errno != EEXIST) return ferry::ErrnoStatus(errno, "cannot create directory", path);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return ferry::ErrnoStatus(errno, "cannot stat", path);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  return ferry::ReadFile(path, kPemFileBytesMax);
}

// Replaces `dir`/`name` with `data` atomically: temp file, fsync, rename, fsync dir.
absl::Status WriteFileAtomically(const std::string& dir, absl::string_view name,
                                 absl::string_view data, mode_t mode) {
  return ferry::WriteFileAtomic(JoinPath(dir, name),
                                std::string_view(data.data(), data.size()),
                                static_cast<int>(mode));
}

// ---------------------------------------------------------------------------------
// Load or create.

absl::Status EnsureFingerprintFile(const std::string& dir,
                                   const std::string& fingerprint) {
  std::string path = JoinPath(dir, kFingerprintFile);
  std::string expected = fingerprint + "\n";
  absl::StatusOr<std::string> current = ReadSmallFile(path);
  if (current.ok() && *current == expected) return absl::OkStatus();
  if (!current.ok() && !absl::IsNotFound(current.status())) return current.status();
  return WriteFileAtomically(dir, kFingerprintFile, expected, 0644);
}

absl::StatusOr<CertificateFiles> LoadCertificate(const std::string& dir) {
  std::string cert_path = JoinPath(dir, kCertFile);
  std::string key_path = JoinPath(dir, kKeyFile);
  CertificateFiles files;
  FERRY_ASSIGN_OR_RETURN(files.cert_pem, ReadSmallFile(cert_path));
  FERRY_ASSIGN_OR_RETURN(files.key_pem, ReadSmallFile(key_path));
  absl::StatusOr<X509Ptr> cert = ParseCertificatePem(files.cert_pem);
  if (!cert.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(cert_path, ": ", cert.status().message()));
  }
  absl::StatusOr<PkeyPtr> key = ParsePrivateKeyPem(files.key_pem);
  if (!key.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(key_path, ": ", key.status().message()));
  }
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(key_path, " does not belong to the certificate in ", cert_path, ": ",
                     OpenSslErrors()));
  }
  FERRY_ASSIGN_OR_RETURN(files.fingerprint, FingerprintOf(cert->get()));
  return files;
}

absl::StatusOr<CertificateFiles> CreateCertificate(const std::string& dir) {
  FERRY_ASSIGN_OR_RETURN(PkeyPtr key, GenerateKey());
  FERRY_ASSIGN_OR_RETURN(X509Ptr cert, MakeSelfSignedCertificate(key.get()));
  CertificateFiles files;
  FERRY_ASSIGN_OR_RETURN(files.cert_pem, CertificateToPem(cert.get()));
  FERRY_ASSIGN_OR_RETURN(files.key_pem, PrivateKeyToPem(key.get()));
  FERRY_ASSIGN_OR_RETURN(files.fingerprint, FingerprintOf(cert.get()));
  // The key goes first: a crash in between leaves a key without a certificate,
  // which the next start reports instead of silently replacing.
  FERRY_RETURN_IF_ERROR(WriteFileAtomically(dir, kKeyFile, files.key_pem, 0600));
  FERRY_RETURN_IF_ERROR(WriteFileAtomically(dir, kCertFile, files.cert_pem, 0644));
  return files;
}

// ---------------------------------------------------------------------------------
// Fetching a server's certificate.

using Clock = std::chrono::steady_clock;

struct HostPort {
  std::string host;
  std::string port;
};

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text) {
  auto invalid = [text](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid address \"", text, "\": ", why));
  };
  HostPort out;
  absl::string_view rest;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return invalid("missing ']'");
    out.host = std::string(text.substr(1, close - 1));
    rest = text.substr(close + 1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return invalid("expected HOST:PORT");
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) {
      return invalid("put an IPv6 address in brackets, as [::1]:PORT");
    }
    rest = text.substr(colon);
  }
  if (rest.empty() || rest.front() != ':') return invalid("expected HOST:PORT");
  rest.remove_prefix(1);
  if (out.host.empty()) return invalid("empty host");
  int port = 0;
  bool digits = !rest.empty() && rest.size() <= 5 &&
                std::all_of(rest.begin(), rest.end(),
                            [](char c) { return absl::ascii_isdigit(c); });
  if (!digits || !absl::SimpleAtoi(rest, &port) || port < 1 || port > 65535) {
    return invalid("port must be a number from 1 to 65535");
  }
  out.port = std::string(rest);
  return out;
}

// Milliseconds left until `deadline`, at least 0.
int RemainingMs(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > INT_MAX ? INT_MAX : static_cast<int>(left.count());
}

// Waits for `events` on `fd`. Returns 0 when ready, else an errno (ETIMEDOUT).
int WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    int rc = ::poll(&pfd, 1, RemainingMs(deadline));
    if (rc > 0) return 0;
    if (rc == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

// Connects a non-blocking socket to `ai`. Returns the socket or sets `*err`.
UniqueFd ConnectOne(const addrinfo* ai, Clock::time_point deadline, int* err) {
  UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol));
  if (!fd.valid()) {
    *err = errno;
    return UniqueFd();
  }
  if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
  if (errno != EINPROGRESS && errno != EINTR) {
    *err = errno;
    return UniqueFd();
  }
  if ((*err = WaitFor(fd.get(), POLLOUT, deadline)) != 0) return UniqueFd();
  socklen_t len = sizeof(*err);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, err, &len) != 0) *err = errno;
  return *err == 0 ? std::move(fd) : UniqueFd();
}

absl::StatusOr<UniqueFd> Connect(const HostPort& address, absl::string_view display,
                                 Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(address.host.c_str(), address.port.c_str(), &hints, &list);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach ferryd at ", display, ": ", ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, FreeWith<::freeaddrinfo>> owner(list);
  int err = ETIMEDOUT;
  for (const addrinfo* ai = list; ai != nullptr && RemainingMs(deadline) > 0;
       ai = ai->ai_next) {
    UniqueFd fd = ConnectOne(ai, deadline, &err);
    if (fd.valid()) return fd;
  }
  return absl::UnavailableError(
      absl::StrCat("cannot reach ferryd at ", display, ": ", ErrnoText(err)));
}

// Blocks SIGPIPE in this thread while alive: OpenSSL writes to sockets with write(),
// and a peer that resets the connection must not kill the process.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&sigpipe_);
    sigaddset(&sigpipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &sigpipe_, &old_) == 0;
  }
  ~ScopedSigpipeBlock() {
    if (!blocked_) return;
    sigset_t pending;
    if (!was_pending_ && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
      timespec zero{0, 0};
      while (sigtimedwait(&sigpipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t sigpipe_;
  sigset_t old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

absl::StatusOr<SslPtr> NewClientSsl(SSL_CTX* ctx, int fd) {
  static constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 ||
      SSL_set_tlsext_host_name(ssl.get(), kServerName) != 1 ||
      SSL_set_alpn_protos(ssl.get(), kAlpnH2, sizeof(kAlpnH2)) != 0) {
    return OpenSslError("setting up TLS");
  }
  return ssl;
}

// Describes why SSL_connect failed with `ssl_error`.
std::string HandshakeFailure(int ssl_error, int rc, int saved_errno) {
  switch (ssl_error) {
    case SSL_ERROR_SSL:
      return OpenSslErrors();
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (rc == 0 || saved_errno == 0) return "connection closed by the server";
      return ErrnoText(saved_errno);
    case SSL_ERROR_ZERO_RETURN:
      return "connection closed by the server";
    default:
      return absl::StrCat("unexpected SSL error ", ssl_error, ": ", OpenSslErrors());
  }
}

absl::Status Handshake(SSL* ssl, int fd, absl::string_view display,
                       Clock::time_point deadline) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl);
    if (rc == 1) return absl::OkStatus();
    int saved_errno = errno;
    int ssl_error = SSL_get_error(ssl, rc);
    short events = ssl_error == SSL_ERROR_WANT_READ    ? POLLIN
                   : ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                       : 0;
    std::string why;
    if (events == 0) {
      why = HandshakeFailure(ssl_error, rc, saved_errno);
    } else if (int err = WaitFor(fd, events, deadline); err != 0) {
      why = err == ETIMEDOUT ? "timed out" : ErrnoText(err);
    } else {
      continue;
    }
    return absl::UnavailableError(
        absl::StrCat("TLS handshake with ", display, " failed: ", why));
  }
}

absl::StatusOr<std::string> PeerCertificatePem(SSL* ssl, absl::string_view display) {
  X509Ptr cert(SSL_get1_peer_certificate(ssl));
  if (!cert) {
    return absl::UnavailableError(
        absl::StrCat(display, " presented no certificate in the TLS handshake"));
  }
  return CertificateToPem(cert.get());
}

}  // namespace

absl::StatusOr<CertificateFiles> LoadOrCreateServerCertificate(
    std::string_view data_dir) {
  ScopedErrorQueue error_queue;
  std::string dir = JoinPath(AsAbsl(data_dir), "tls");
  FERRY_RETURN_IF_ERROR(MakePrivateDirectory(dir));
  std::string cert_path = JoinPath(dir, kCertFile);
  std::string key_path = JoinPath(dir, kKeyFile);
  FERRY_ASSIGN_OR_RETURN(bool have_cert, FileExists(cert_path));
  FERRY_ASSIGN_OR_RETURN(bool have_key, FileExists(key_path));
  // The fingerprint is written last: a key without certificate or fingerprint is the
  // trace of a first start that crashed before it published anything, so it is
  // replaced. Any other half pair was published once and is reported.
  FERRY_ASSIGN_OR_RETURN(bool have_fingerprint,
                         FileExists(JoinPath(dir, kFingerprintFile)));
  if (have_key && !have_cert && !have_fingerprint) have_key = false;
  if (have_cert != have_key) {
    const std::string& present = have_cert ? cert_path : key_path;
    const std::string& missing = have_cert ? key_path : cert_path;
    return absl::FailedPreconditionError(
        absl::StrCat("found ", present, " but not ", missing,
                     "; restore it, or remove both to have a new certificate made"));
  }
  CertificateFiles files;
  if (have_cert) {
    FERRY_ASSIGN_OR_RETURN(files, LoadCertificate(dir));
  } else {
    FERRY_ASSIGN_OR_RETURN(files, CreateCertificate(dir));
  }
  FERRY_RETURN_IF_ERROR(EnsureFingerprintFile(dir, files.fingerprint));
  return files;
}

absl::StatusOr<std::string> FingerprintOfPem(std::string_view cert_pem) {
  ScopedErrorQueue error_queue;
  FERRY_ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(AsAbsl(cert_pem)));
  return FingerprintOf(cert.get());
}

absl::StatusOr<std::string> NormalizeFingerprint(std::string_view input) {
  absl::string_view text = AsAbsl(input);
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  constexpr absl::string_view kPrefix = kFingerprintPrefix;
  if (rest.size() >= kPrefix.size() &&
      absl::EqualsIgnoreCase(rest.substr(0, kPrefix.size()), kPrefix)) {
    rest.remove_prefix(kPrefix.size());
  }
  std::string hex;
  for (char c : rest) {
    if (c == ':') continue;
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid fingerprint \"", text, "\": expected SHA256: and 64 hex digits"));
    }
    hex += absl::ascii_tolower(static_cast<unsigned char>(c));
  }
  if (hex.size() != kFingerprintHexDigits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid fingerprint \"", text, "\": expected 64 hex digits, got ", hex.size()));
  }
  return absl::StrCat(kFingerprintPrefix, hex);
}

absl::StatusOr<std::string> FetchServerCertificate(std::string_view input,
                                                   int timeout_ms) {
  absl::string_view host_port = AsAbsl(input);
  FERRY_ASSIGN_OR_RETURN(HostPort address, ParseHostPort(host_port));
  Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : 0);
  ScopedSigpipeBlock no_sigpipe;
  ScopedErrorQueue error_queue;
  FERRY_ASSIGN_OR_RETURN(UniqueFd fd, Connect(address, host_port, deadline));
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
    return OpenSslError("creating a TLS context");
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  FERRY_ASSIGN_OR_RETURN(SslPtr ssl, NewClientSsl(ctx.get(), fd.get()));
  FERRY_RETURN_IF_ERROR(Handshake(ssl.get(), fd.get(), host_port, deadline));
  absl::StatusOr<std::string> pem = PeerCertificatePem(ssl.get(), host_port);
  SSL_shutdown(ssl.get());  // sends close_notify; the reply is not awaited
  return pem;
}

}  // namespace ferry::tls
