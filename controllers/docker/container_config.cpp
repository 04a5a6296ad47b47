#include "controllers/docker/container_config.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>

#include <sodium.h>

#include "config/units.hpp"
#include "controllers/docker/config_files.hpp"
#include "controllers/docker/secret_files.hpp"

namespace foundationd::docker {
namespace {

using nlohmann::json;

std::int64_t nanos(config::Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// A Value in canonical form: its text, or {"sensitive": digest} when it
// references a credential. The digest covers every segment, so a literal
// prefix change and a rotation both change it.
json canonicalValue(const config::Value& v, const SecretResolver& secrets) {
  if (!v.sensitive()) return v.display();
  std::string material;
  for (const auto& seg : v.segments) {
    if (const auto* text = std::get_if<std::string>(&seg)) {
      material += "t:" + *text + "\n";
    } else {
      const auto& ref = std::get<config::CredentialRef>(seg);
      auto d = secrets.digest(ref);
      material += "c:" + ref.name + "." + ref.field + "=" + (d ? *d : std::string("pending")) + "\n";
    }
  }
  return json{{"sensitive", sha256Hex(material)}};
}

Result<std::string> resolveValue(const config::Value& v, const SecretResolver& secrets,
                                 const std::string& where) {
  config::CredentialRef ref;
  auto out = resolveSecrets(v, secrets, &ref);
  if (!out) {
    return Error::make(ErrorCode::invalid_argument,
                       where + " needs credential " + ref.name + "." + ref.field +
                           ", which is not available (is the state unlocked and the "
                           "credential generated?)");
  }
  return std::move(*out);
}

std::string portKey(const config::PortMapping& p) {
  return std::to_string(p.containerPort) + "/" + p.protocol;
}

std::string portText(const config::PortMapping& p) {
  std::string s;
  if (!p.hostIp.empty()) {
    s += p.hostIp.find(':') != std::string::npos ? "[" + p.hostIp + "]" : p.hostIp;
    s += ":";
  }
  if (p.hostPort) s += std::to_string(*p.hostPort) + ":";
  return s + portKey(p);
}

std::string mountText(const config::Mount& m) {
  return m.source + ":" + m.target + (m.readOnly ? ":ro" : "");
}

bool isSensitive(const json& j) { return j.is_object() && j.contains("sensitive"); }

// The canonical config's keys that differ from the spec's (units in the name).
std::string specKey(const std::string& key) {
  if (key == "stop_timeout_ms") return "stop_timeout";
  if (key == "nano_cpus") return "cpus";
  if (key == "interval_ms") return "interval";
  if (key == "timeout_ms") return "timeout";
  if (key == "start_period_ms") return "start_period";
  return key;
}

// A canonical value as the spec writes it: durations "3s", sizes "64MiB",
// cpus 1.5, networks as names (or {name, aliases}), a secret as
// "(sensitive)". An absent field with a spec default shows the default;
// otherwise null ("not set").
json specValue(const std::string& key, const json& v) {
  if (v.is_null()) {
    if (key == "restart") return "no";
    if (key == "read_only" || key == "privileged" || key == "internal") return false;
    return nullptr;
  }
  if (isSensitive(v)) return "(sensitive)";
  if ((key == "stop_timeout_ms" || key == "interval_ms" || key == "timeout_ms" ||
       key == "start_period_ms") && v.is_number_integer()) {
    return config::formatDuration(config::Duration(v.get<std::int64_t>()));
  }
  if (key == "memory" && v.is_number_integer()) return config::formatSize(v.get<std::int64_t>());
  if (key == "nano_cpus" && v.is_number_integer()) {
    const auto nano = v.get<std::int64_t>();
    if (nano % 1'000'000'000 == 0) return nano / 1'000'000'000;
    return static_cast<double>(nano) / 1e9;
  }
  if (key == "networks" && v.is_array()) {
    json out = json::array();
    for (const auto& n : v) {
      out.push_back(n.is_object() && !n.contains("aliases") && n.contains("name") ? n.at("name")
                                                                                   : n);
    }
    return out;
  }
  if (key == "healthcheck" && v.is_object()) {
    json out = json::object();
    for (const auto& [k, sub] : v.items()) out[specKey(k)] = specValue(k, sub);
    return out;
  }
  return v;
}

}  // namespace

std::string sha256Hex(const std::string& text) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(sizeof out * 2);
  for (unsigned char b : out) {
    hex += kHex[b >> 4];
    hex += kHex[b & 0xf];
  }
  return hex;
}

std::string valueDigest(const config::Value& v, const SecretResolver& secrets) {
  if (!v.sensitive()) return sha256Hex(v.display());
  return canonicalValue(v, secrets).at("sensitive").get<std::string>();
}

Desired desiredContainer(const config::ContainerSpec& c, const SecretResolver& secrets) {
  json j = json::object();
  j["image"] = c.image;
  if (c.command) j["command"] = *c.command;
  if (c.entrypoint) j["entrypoint"] = *c.entrypoint;
  if (!c.env.empty()) {
    json env = json::object();
    for (const auto& [k, v] : c.env) env[k] = canonicalValue(v, secrets);
    j["env"] = env;
  }
  if (!c.secretFiles.empty()) {
    json files = json::object();
    for (const auto& [path, v] : c.secretFiles) files[path] = canonicalValue(v, secrets);
    j["secret_files"] = files;
  }
  if (!c.files.empty()) {
    // The content's digest enters the hash only for consumers that follow a
    // change by being recreated; the others follow it live (config_files.hpp).
    json files = json::object();
    for (const auto& [path, m] : c.files) {
      json e{{"file", m.file}, {"on_change", config::toString(m.effective)}};
      if (m.effective.kind == config::OnChange::Kind::recreate) {
        e["digest"] = valueDigest(m.content, secrets);
      }
      files[path] = e;
    }
    j["files"] = files;
  }
  if (!c.networks.empty()) {
    json nets = json::array();
    for (const auto& n : c.networks) {
      json e{{"name", n.network}};
      if (!n.aliases.empty()) e["aliases"] = n.aliases;
      nets.push_back(e);
    }
    j["networks"] = nets;
  }
  if (!c.volumes.empty()) {
    json vols = json::array();
    for (const auto& m : c.volumes) vols.push_back(mountText(m));
    j["volumes"] = vols;
  }
  if (!c.ports.empty()) {
    json ports = json::array();
    for (const auto& p : c.ports) ports.push_back(portText(p));
    j["ports"] = ports;
  }
  if (c.restart != "no") j["restart"] = c.restart;
  if (c.user) j["user"] = *c.user;
  if (c.healthcheck) {
    json h{{"test", c.healthcheck->test}};
    if (c.healthcheck->interval) h["interval_ms"] = c.healthcheck->interval->count();
    if (c.healthcheck->timeout) h["timeout_ms"] = c.healthcheck->timeout->count();
    if (c.healthcheck->startPeriod) h["start_period_ms"] = c.healthcheck->startPeriod->count();
    if (c.healthcheck->retries) h["retries"] = *c.healthcheck->retries;
    j["healthcheck"] = h;
  }
  if (!c.labels.empty()) j["labels"] = c.labels;
  if (c.memoryBytes) j["memory"] = *c.memoryBytes;
  if (c.cpus) j["nano_cpus"] = static_cast<std::int64_t>(std::llround(*c.cpus * 1e9));
  if (c.readOnly) j["read_only"] = true;
  if (c.privileged) j["privileged"] = true;
  if (!c.capAdd.empty()) j["cap_add"] = c.capAdd;
  if (!c.capDrop.empty()) j["cap_drop"] = c.capDrop;
  if (c.stopTimeout) j["stop_timeout_ms"] = c.stopTimeout->count();
  if (!c.tmpfs.empty()) j["tmpfs"] = c.tmpfs;
  if (c.runOnce) j["run"] = "once";
  return Desired{j, sha256Hex(j.dump())};
}

Desired desiredNetwork(const config::NetworkSpec& n) {
  json j{{"driver", n.driver}};
  if (n.internal) j["internal"] = true;
  if (n.subnet) j["subnet"] = *n.subnet;
  if (!n.labels.empty()) j["labels"] = n.labels;
  return Desired{j, sha256Hex(j.dump())};
}

Desired desiredVolume(const config::VolumeSpec& v) {
  json j{{"driver", v.driver}};
  if (!v.labels.empty()) j["labels"] = v.labels;
  return Desired{j, sha256Hex(j.dump())};
}

Labels ownedLabels(const std::map<std::string, std::string>& userLabels,
                   const std::string& project, const Desired& desired) {
  Labels labels(userLabels.begin(), userLabels.end());
  labels[kLabelManaged] = "true";
  labels[kLabelProject] = project;
  labels[kLabelHash] = desired.hash;
  labels[kLabelConfig] = desired.canonical.dump();
  return labels;
}

Result<json> containerCreateBody(const config::ContainerSpec& c, const std::string& project,
                                 const Desired& desired, const SecretResolver& secrets,
                                 const std::string& secretsDir, const std::string& filesDir) {
  json body = json::object();
  body["Image"] = c.image;
  if (c.command) body["Cmd"] = *c.command;
  if (c.entrypoint) body["Entrypoint"] = *c.entrypoint;
  json env = json::array();
  for (const auto& [k, v] : c.env) {
    auto value = resolveValue(v, secrets, "env " + k + " of container " + c.name);
    if (!value) return std::move(value).error();
    env.push_back(k + "=" + value.value());
  }
  body["Env"] = env;
  for (const auto& [path, m] : c.files) {
    // Its file is written only once its secret is available: without it,
    // Docker would make a directory of the missing bind source.
    if (!m.content.sensitive()) continue;
    config::CredentialRef ref;
    auto value = resolveSecrets(m.content, secrets, &ref);
    if (!value) {
      return Error::make(ErrorCode::invalid_argument,
                         "file " + m.file + " mounted at " + path + " of container " + c.name +
                             " needs credential " + ref.name + "." + ref.field +
                             ", which is not available");
    }
    sodium_memzero(value->data(), value->size());
  }
  body["Labels"] = ownedLabels(c.labels, project, desired);
  if (!c.dependsOn.empty()) {
    std::string deps;
    for (const auto& d : c.dependsOn) deps += (deps.empty() ? "" : ",") + d.container;
    body["Labels"][kLabelDependsOn] = deps;
  }
  if (c.user) body["User"] = *c.user;
  if (c.stopTimeout) {
    body["StopTimeout"] = std::chrono::duration_cast<std::chrono::seconds>(*c.stopTimeout).count();
  }
  if (c.healthcheck) {
    json h{{"Test", c.healthcheck->test}};
    if (c.healthcheck->interval) h["Interval"] = nanos(*c.healthcheck->interval);
    if (c.healthcheck->timeout) h["Timeout"] = nanos(*c.healthcheck->timeout);
    if (c.healthcheck->startPeriod) h["StartPeriod"] = nanos(*c.healthcheck->startPeriod);
    if (c.healthcheck->retries) h["Retries"] = *c.healthcheck->retries;
    body["Healthcheck"] = h;
  }

  json host = json::object();
  json binds = json::array();
  for (const auto& m : c.volumes) binds.push_back(mountText(m));
  for (const auto& b : secretFileBinds(c, secretsDir)) binds.push_back(b);
  for (const auto& b : configFileBinds(c, project, filesDir, secretsDir)) binds.push_back(b);
  host["Binds"] = binds;
  if (!c.ports.empty()) {
    json exposed = json::object();
    json bindings = json::object();
    for (const auto& p : c.ports) {
      exposed[portKey(p)] = json::object();
      json b{{"HostIp", p.hostIp},
             {"HostPort", p.hostPort ? std::to_string(*p.hostPort) : std::string()}};
      bindings[portKey(p)].push_back(b);
    }
    body["ExposedPorts"] = exposed;
    host["PortBindings"] = bindings;
  }
  host["RestartPolicy"] = json{{"Name", c.restart}};
  if (c.memoryBytes) host["Memory"] = *c.memoryBytes;
  if (c.cpus) host["NanoCpus"] = static_cast<std::int64_t>(std::llround(*c.cpus * 1e9));
  host["ReadonlyRootfs"] = c.readOnly;
  host["Privileged"] = c.privileged;
  if (!c.capAdd.empty()) host["CapAdd"] = c.capAdd;
  if (!c.capDrop.empty()) host["CapDrop"] = c.capDrop;
  if (!c.tmpfs.empty()) {
    json tmpfs = json::object();
    for (const auto& t : c.tmpfs) {
      auto colon = t.find(':');
      tmpfs[t.substr(0, colon)] = colon == std::string::npos ? "" : t.substr(colon + 1);
    }
    host["Tmpfs"] = tmpfs;
  }
  if (!c.networks.empty()) {
    const auto& first = c.networks.front();
    host["NetworkMode"] = first.network;
    json endpoint = json::object();
    if (!first.aliases.empty()) endpoint["Aliases"] = first.aliases;
    body["NetworkingConfig"] = json{{"EndpointsConfig", json{{first.network, endpoint}}}};
  }
  body["HostConfig"] = host;
  return body;
}

std::vector<config::NetworkAttachment> extraNetworks(const config::ContainerSpec& c) {
  if (c.networks.size() <= 1) return {};
  return {c.networks.begin() + 1, c.networks.end()};
}

json networkCreateBody(const config::NetworkSpec& n, const std::string& project,
                       const Desired& desired) {
  json body{{"Name", n.name},
            {"Driver", n.driver},
            {"Internal", n.internal},
            {"CheckDuplicate", true},
            {"Labels", ownedLabels(n.labels, project, desired)}};
  if (n.subnet) {
    body["IPAM"] = json{{"Driver", "default"}, {"Config", json::array({{{"Subnet", *n.subnet}}})}};
  }
  return body;
}

json volumeCreateBody(const config::VolumeSpec& v, const std::string& project,
                      const Desired& desired) {
  return json{{"Name", v.name}, {"Driver", v.driver},
              {"Labels", ownedLabels(v.labels, project, desired)}};
}

std::vector<FieldChange> diffCanonical(const json& before, const json& after) {
  std::vector<FieldChange> out;
  std::set<std::string> keys;
  for (const auto& [k, _] : before.items()) keys.insert(k);
  for (const auto& [k, _] : after.items()) keys.insert(k);
  static const json kNull;
  auto field = [&out](const std::string& name, const std::string& key, const json& b,
                      const json& a) {
    out.push_back({name, specValue(key, b), specValue(key, a), isSensitive(b) || isSensitive(a)});
  };
  for (const auto& key : keys) {
    const json& b = before.contains(key) ? before.at(key) : kNull;
    const json& a = after.contains(key) ? after.at(key) : kNull;
    if (b == a) continue;
    // Maps of named entries (env, labels, secret_files, files) and the
    // healthcheck (when it is changed, not added or removed) diff per entry.
    const bool perEntry =
        key == "env" || key == "labels" || key == "secret_files" || key == "files";
    if ((perEntry && (b.is_object() || b.is_null()) && (a.is_object() || a.is_null())) ||
        (key == "healthcheck" && b.is_object() && a.is_object())) {
      std::set<std::string> sub;
      if (b.is_object()) for (const auto& [k, _] : b.items()) sub.insert(k);
      if (a.is_object()) for (const auto& [k, _] : a.items()) sub.insert(k);
      for (const auto& k : sub) {
        const json& sb = b.is_object() && b.contains(k) ? b.at(k) : kNull;
        const json& sa = a.is_object() && a.contains(k) ? a.at(k) : kNull;
        if (sb == sa) continue;
        // Entries of env/labels/secret_files are values; healthcheck keys have units.
        field(key + "." + (perEntry ? k : specKey(k)), perEntry ? "" : k, sb, sa);
      }
      continue;
    }
    field(specKey(key), key, b, a);
  }
  // In the order of the spec's keys (the canonical names sort differently).
  std::stable_sort(out.begin(), out.end(),
                   [](const FieldChange& x, const FieldChange& y) { return x.field < y.field; });
  return out;
}

std::optional<std::string> resolveSecrets(const config::Value& v, const SecretResolver& secrets,
                                          config::CredentialRef* missing) {
  std::string out;
  for (const auto& seg : v.segments) {
    if (const auto* text = std::get_if<std::string>(&seg)) {
      out += *text;
      continue;
    }
    const auto& ref = std::get<config::CredentialRef>(seg);
    auto value = secrets.value(ref);
    if (!value) {
      if (!out.empty()) sodium_memzero(out.data(), out.size());
      if (missing != nullptr) *missing = ref;
      return std::nullopt;
    }
    out += *value;
    sodium_memzero(value->data(), value->size());
  }
  return out;
}

std::optional<std::string> imagePinProblem(const std::string& pinned, const std::string& liveImage,
                                           const std::string& liveImageId) {
  auto isDigest = [](std::string_view d) {
    if (d.size() != 7 + 64 || d.rfind("sha256:", 0) != 0) return false;
    return d.substr(7).find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  const std::string runs = liveImage == liveImageId || liveImage.empty()
                               ? liveImageId
                               : liveImage + " (" + liveImageId + ")";
  if (isDigest(pinned)) {
    if (liveImageId == pinned) return std::nullopt;
    return "runs image " + runs + ", not the pinned image ID " + pinned;
  }
  const auto at = pinned.rfind('@');
  if (at == std::string::npos || !isDigest(std::string_view(pinned).substr(at + 1)))
    return std::nullopt;  // a tag: followed as the Engine resolves it
  if (liveImage == pinned) return std::nullopt;
  return "runs image " + runs + ", not the pinned digest " + pinned;
}

}  // namespace foundationd::docker
