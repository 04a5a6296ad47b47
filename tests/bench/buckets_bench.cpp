// Benchmark: how long a no-op bucket reconcile takes (buckets::reconcile on a
// converged server), against real S3 servers in containers it starts:
// SeaweedFS (FOUNDATIOND_S3_IMAGE) and, when set, versitygw
// (FOUNDATIOND_S3_IMAGE_VERSITYGW). For N buckets it converges once, then
// times R no-op runs and prints the median and p90, the requests a no-op
// makes (deterministic: 1 + 2N), and the ratio to one bare ListBuckets round
// trip measured in the same run.
//
//   export FOUNDATIOND_S3_IMAGE=$(tests/peers/seaweedfs-image)
//   export FOUNDATIOND_S3_IMAGE_VERSITYGW=$(tests/peers/versitygw-image)
//   build/tests/bench_buckets [rounds]
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "controllers/buckets/buckets.hpp"

using namespace foundationd;
using namespace foundationd::buckets;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kAccess = "fdbenchadmin";
const std::string kSecret = "fdbench-secret-0123456789";

std::string run(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  if (!p) return out;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p.get()) != nullptr) out += buf.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

struct Peer {
  std::string name;
  std::string endpoint;
  Peer(const std::string& image, const std::string& tag) {
    name = "fdtest-buckets-bench-" + tag + "-" + std::to_string(::getpid());
    run("AWS_ACCESS_KEY_ID=" + kAccess + " AWS_SECRET_ACCESS_KEY=" + kSecret +
        " ROOT_ACCESS_KEY_ID=" + kAccess + " ROOT_SECRET_ACCESS_KEY=" + kSecret +
        " docker run -d --name " + name +
        " -p 127.0.0.1::9000 -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY"
        " -e ROOT_ACCESS_KEY_ID -e ROOT_SECRET_ACCESS_KEY " +
        image);
    std::string port = run("docker port " + name + " 9000/tcp");
    endpoint = "http://127.0.0.1:" + port.substr(port.rfind(':') + 1);
  }
  ~Peer() { run("docker rm -f -v " + name + " >/dev/null 2>&1"); }
};

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

config::Spec specFor(const Peer& peer, int n) {
  config::Spec spec;
  config::S3Spec s3;
  s3.name = "store";
  s3.container = peer.name;
  s3.endpoint = peer.endpoint;
  s3.accessKey = config::Value::literal(kAccess);
  s3.secretKey = config::Value::literal(kSecret);
  spec.s3["store"] = s3;
  for (int i = 0; i < n; ++i) {
    config::BucketSpec b;
    b.name = "bench-" + std::to_string(i);
    b.s3 = "store";
    b.versioning = i % 2 == 0;
    spec.buckets[b.name] = b;
  }
  return spec;
}

int bench(const std::string& label, const std::string& image, int rounds, bool lifecycle) {
  Peer peer(image, label);
  Options opt;
  opt.waitReady = std::chrono::seconds(90);
  opt.pollInterval = std::chrono::milliseconds(100);
  for (int n : {1, 4, 16}) {
    auto spec = specFor(peer, n);
    if (lifecycle) {
      for (auto& [_, b] : spec.buckets) b.expireDays = 30;
    }
    auto first = reconcile(spec, {}, opt);
    if (!first.report.ok()) {
      for (const auto& o : first.report.outcomes) {
        std::fprintf(stderr, "%s: %s\n", o.key.str().c_str(), o.message.c_str());
      }
      return 1;
    }
    opt.applied = first.applied;
    std::vector<double> noop, list;
    std::uint64_t requests = 0;
    S3Client bare(S3Endpoint{peer.endpoint, "us-east-1", kAccess, kSecret});
    for (int r = 0; r < rounds; ++r) {
      auto t = Clock::now();
      auto out = reconcile(spec, {}, opt);
      noop.push_back(ms(Clock::now() - t));
      requests = out.requests;
      for (const auto& o : out.report.outcomes) {
        if (o.changed || !o.ok) {
          std::fprintf(stderr, "not a no-op: %s %s\n", o.key.str().c_str(), o.message.c_str());
          return 1;
        }
      }
      t = Clock::now();
      (void)bare.listBuckets();
      list.push_back(ms(Clock::now() - t));
    }
    double med = quantile(noop, 0.5);
    double listMed = quantile(list, 0.5);
    std::printf(
        "%-10s buckets=%-3d no-op reconcile: median %.2f ms, p90 %.2f ms, %llu requests "
        "(1 + 2N); one ListBuckets %.2f ms; ratio %.1fx\n",
        label.c_str(), n, med, quantile(noop, 0.9), static_cast<unsigned long long>(requests),
        listMed, med / listMed);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 21;
  const char* sw = std::getenv("FOUNDATIOND_S3_IMAGE");
  if (sw == nullptr || *sw == '\0') {
    std::fprintf(stderr, "set FOUNDATIOND_S3_IMAGE (tests/peers/seaweedfs-image)\n");
    return 2;
  }
  std::printf("bucket controller no-op reconcile, %d rounds each\n", rounds);
  int rc = bench("seaweedfs", sw, rounds, true);
  const char* vgw = std::getenv("FOUNDATIOND_S3_IMAGE_VERSITYGW");
  if (rc == 0 && vgw != nullptr && *vgw != '\0') rc = bench("versitygw", vgw, rounds, false);
  return rc;
}
