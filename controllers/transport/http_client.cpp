#include "controllers/transport/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <type_traits>

#include <atomic>

#include <curl/curl.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sodium.h>

#include "state/wiping_allocator.hpp"

namespace foundationd::transport {

namespace {

// libcurl is loaded on the first request over TCP, not at process start.
// With what Debian's libcurl4 pulls in (OpenSSL, GnuTLS through LDAP and
// RTMP, Kerberos, libssh2, ...), loading it and running those libraries'
// initialisers was about half of foundationd's start-up, paid by every
// command, while most (check, plan and apply of a Docker-only spec, status,
// unseal) never make such a request. The library is the one the build
// compiled against, by its soname (the package depends on libcurl4).
struct Curl {
  CURLcode (*global_init_mem)(long, curl_malloc_callback, curl_free_callback,
                              curl_realloc_callback, curl_strdup_callback,
                              curl_calloc_callback);
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

// libcurl's own memory is zeroed before it is freed: its copies of the
// request headers (an X-Vault-Token, a password), of the request it writes
// and of the answer it reads (Vault's init answer, a token) would otherwise
// linger in freed heap. glibc's malloc_usable_size gives each block's size.
std::atomic<std::size_t> curlWiped{0};

void wipeBlock(void* p) noexcept {
  if (p == nullptr) return;
  const std::size_t n = malloc_usable_size(p);
  sodium_memzero(p, n);
  curlWiped.fetch_add(n, std::memory_order_relaxed);
}

void* curlMalloc(size_t n) {
  return std::malloc(n);
}
void curlFree(void* p) {
  wipeBlock(p);
  std::free(p);
}
void* curlRealloc(void* p, size_t n) {
  if (p == nullptr) return std::malloc(n);
  if (n == 0) {
    curlFree(p);
    return nullptr;
  }
  // Never realloc in place of libcurl: the old block would be freed unzeroed.
  void* fresh = std::malloc(n);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, p, std::min(n, malloc_usable_size(p)));
  curlFree(p);
  return fresh;
}
char* curlStrdup(const char* s) {
  const std::size_t n = std::strlen(s) + 1;
  auto* out = static_cast<char*>(std::malloc(n));
  if (out != nullptr) std::memcpy(out, s, n);
  return out;
}
void* curlCalloc(size_t n, size_t size) {
  return std::calloc(n, size);
}

// The loaded library, or an error that says why it could not be loaded.
Result<const Curl*> curl() {
  static Curl lib{};
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      failure = std::string("cannot load libcurl.so.4 (Debian's libcurl4): ") +
                (why ? why : "unknown error");
      return;
    }
    const char* missing = nullptr;
    auto bind = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
      if (fn == nullptr && missing == nullptr) missing = name;
    };
    bind(lib.global_init_mem, "curl_global_init_mem");
    bind(lib.easy_init, "curl_easy_init");
    bind(lib.easy_setopt, "curl_easy_setopt");
    bind(lib.easy_perform, "curl_easy_perform");
    bind(lib.easy_getinfo, "curl_easy_getinfo");
    bind(lib.easy_cleanup, "curl_easy_cleanup");
    bind(lib.easy_reset, "curl_easy_reset");
    bind(lib.easy_strerror, "curl_easy_strerror");
    bind(lib.slist_append, "curl_slist_append");
    bind(lib.slist_free_all, "curl_slist_free_all");
    if (missing != nullptr) {
      failure = std::string("libcurl.so.4 has no ") + missing;
      return;
    }
    if (lib.global_init_mem(CURL_GLOBAL_DEFAULT, curlMalloc, curlFree, curlRealloc, curlStrdup,
                            curlCalloc) != CURLE_OK) {
      failure = "curl_global_init_mem failed";
    }
  });
  if (!failure.empty()) return Error::make(ErrorCode::internal, "libcurl: " + failure);
  return &lib;
}

struct EasyDeleter {
  const Curl* lib;
  void operator()(CURL* c) const noexcept { lib->easy_cleanup(c); }
};
struct SlistDeleter {
  const Curl* lib;
  void operator()(curl_slist* l) const noexcept { lib->slist_free_all(l); }
};

// The answer grows in a string whose old buffers are zeroed when freed (it
// may be Vault's init answer); the caller gets one exact copy.
size_t onBody(char* data, size_t size, size_t n, void* user) {
  static_cast<state::WipingString*>(user)->append(data, size * n);
  return size * n;
}

// Streaming answers: a 2xx body goes to the sink, any other is kept
// (bounded) for its error document.
struct SinkState {
  const Curl* lib = nullptr;
  CURL* easy = nullptr;
  const std::function<bool(std::string_view)>* sink = nullptr;
  state::WipingString* kept = nullptr;
};

size_t onSinkBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<SinkState*>(user);
  long status = 0;
  s->lib->easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300) {
    return (*s->sink)(std::string_view(data, size * n)) ? size * n : 0;
  }
  if (s->kept->size() < 64 * 1024) s->kept->append(data, std::min<size_t>(size * n, 64 * 1024));
  return size * n;
}

size_t onReadBody(char* buf, size_t size, size_t n, void* user) {
  const auto* source = static_cast<const std::function<std::int64_t(char*, std::size_t)>*>(user);
  const std::int64_t got = (*source)(buf, size * n);
  if (got < 0) return CURL_READFUNC_ABORT;
  return static_cast<size_t>(got);
}

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(data, size * n);
  // A new status line (after a redirect or a 100 Continue) starts a new set.
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string value = line.substr(colon + 1);
  auto notSpace = [](unsigned char c) { return !std::isspace(c); };
  value.erase(value.begin(), std::find_if(value.begin(), value.end(), notSpace));
  value.erase(std::find_if(value.rbegin(), value.rend(), notSpace).base(), value.end());
  (*headers)[name] = value;
  return size * n;
}

ErrorCode codeOf(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return ErrorCode::timeout;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return ErrorCode::invalid_argument;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR: return ErrorCode::unavailable;
    default: return ErrorCode::internal;
  }
}

}  // namespace

std::string PeerResponse::header(const std::string& lowerName) const {
  auto it = headers.find(lowerName);
  return it == headers.end() ? std::string{} : it->second;
}

namespace {
Result<PeerResponse> exchange(const Curl& lib, CURL* c, const PeerRequest& request);
}  // namespace

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    this->~Session();
    easy_ = other.easy_;
    other.easy_ = nullptr;
  }
  return *this;
}

Session::~Session() {
  if (easy_ == nullptr) return;
  // A handle exists only once libcurl is loaded.
  if (auto loaded = curl()) loaded.value()->easy_cleanup(static_cast<CURL*>(easy_));
  easy_ = nullptr;
}

Result<PeerResponse> peerRequest(const PeerRequest& request) {
  auto loaded = curl();
  if (!loaded) return loaded.error();
  const Curl& lib = *loaded.value();
  std::unique_ptr<CURL, EasyDeleter> easy(lib.easy_init(), EasyDeleter{&lib});
  if (!easy) return Error::make(ErrorCode::internal, "libcurl: cannot create a handle");
  return exchange(lib, easy.get(), request);
}

Result<PeerResponse> sessionRequest(const PeerRequest& request, Session& session) {
  auto loaded = curl();
  if (!loaded) return loaded.error();
  const Curl& lib = *loaded.value();
  if (session.easy_ == nullptr) {
    session.easy_ = lib.easy_init();
    if (session.easy_ == nullptr) {
      return Error::make(ErrorCode::internal, "libcurl: cannot create a handle");
    }
  }
  CURL* c = static_cast<CURL*>(session.easy_);
  struct Reset {
    const Curl& lib;
    CURL* c;
    ~Reset() { lib.easy_reset(c); }  // the request's options go (zeroed); the connection stays
  } reset{lib, c};
  return exchange(lib, c, request);
}

namespace {

Result<PeerResponse> exchange(const Curl& lib, CURL* c, const PeerRequest& request) {
  PeerResponse response;
  state::WipingString body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  lib.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  lib.easy_setopt(c, CURLOPT_URL, request.url.c_str());
  lib.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  lib.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  lib.easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  lib.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connectTimeout.count()));
  SinkState sinkState{&lib, c, &request.responseSink, &body};
  if (request.responseSink) {
    lib.easy_setopt(c, CURLOPT_WRITEFUNCTION, onSinkBody);
    lib.easy_setopt(c, CURLOPT_WRITEDATA, &sinkState);
  } else {
    lib.easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
    lib.easy_setopt(c, CURLOPT_WRITEDATA, &body);
  }
  if (request.pathAsIs) lib.easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  if (request.stallTimeout.count() > 0) {
    lib.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    lib.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.stallTimeout.count()));
  }
  lib.easy_setopt(c, CURLOPT_HEADERFUNCTION, onHeader);
  lib.easy_setopt(c, CURLOPT_HEADERDATA, &response.headers);

  // The method and body. POSTFIELDS with an explicit size also covers
  // binary bodies; CUSTOMREQUEST names any other verb.
  const std::string& method = request.method;
  if (request.bodySource) {
    // An upload: PUT with a known length, read piece by piece.
    lib.easy_setopt(c, CURLOPT_UPLOAD, 1L);
    lib.easy_setopt(c, CURLOPT_READFUNCTION, onReadBody);
    lib.easy_setopt(c, CURLOPT_READDATA, &request.bodySource);
    lib.easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.bodySize));
    if (method != "PUT") lib.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method == "HEAD") {
    lib.easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method != "GET" || !request.body.empty()) {
    lib.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    lib.easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    if (method != "POST") lib.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  curl_slist* raw = nullptr;
  for (const auto& [name, value] : request.headers) {
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    raw = lib.slist_append(raw, line.c_str());
    sodium_memzero(line.data(), line.size());  // it may carry a token
  }
  // libcurl would add "Expect: 100-continue" to larger bodies; our peers
  // answer at once, and the extra round trip only slows things down.
  // Not with SigV4: libcurl 7.88 signs that removed header as "expect;"
  // although it never sends it, and S3 then answers SignatureDoesNotMatch
  // (S3 bodies here are small, far under the 100-continue threshold).
  if (!request.sigv4) raw = lib.slist_append(raw, "Expect:");
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw, SlistDeleter{&lib});
  lib.easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

  if (request.sigv4) {
    lib.easy_setopt(c, CURLOPT_AWS_SIGV4, request.sigv4->provider.c_str());
    lib.easy_setopt(c, CURLOPT_USERNAME, request.sigv4->accessKey.c_str());
    lib.easy_setopt(c, CURLOPT_PASSWORD, request.sigv4->secretKey.c_str());
  } else if (request.basicAuth) {
    lib.easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    lib.easy_setopt(c, CURLOPT_USERNAME, request.basicAuth->user.c_str());
    lib.easy_setopt(c, CURLOPT_PASSWORD, request.basicAuth->password.c_str());
  }

  CURLcode rc = lib.easy_perform(c);
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : lib.easy_strerror(rc);
    return Error::make(codeOf(rc), method + " " + request.url + ": " + why);
  }
  long status = 0;
  lib.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  response.body.assign(body.data(), body.size());
  return response;
}

}  // namespace

void preloadInBackground() {
  static std::once_flag once;
  std::call_once(once, [] {
    static std::jthread loader([] { (void)curl(); });
  });
}

std::size_t curlWipedBytes() noexcept {
  return curlWiped.load(std::memory_order_relaxed);
}

namespace {

std::string percentEncode(std::string_view text, bool keepSlash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char ch : text) {
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keepSlash && ch == '/')) {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 0xF];
    }
  }
  return out;
}

}  // namespace

std::string urlEncode(std::string_view text) {
  return percentEncode(text, false);
}

std::string urlEncodePath(std::string_view text) {
  return percentEncode(text, true);
}

}  // namespace foundationd::transport
